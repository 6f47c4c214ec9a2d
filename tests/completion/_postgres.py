"""A real PostgreSQL server for the store's tests and the benchmark: Debian's `postgresql`
binaries (`initdb`, `pg_ctl`), a cluster in a temporary directory, on a free port of 127.0.0.1.

As root the cluster belongs to the `postgres` user (PostgreSQL refuses to run as root): the
binaries run under `runuser -u postgres --`. `PostgresServer.find()` says why it cannot run when
the binaries or that user are missing, so tests skip with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> Path | None:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(str(shutil.which("initdb"))).parent
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


@dataclass
class PostgresServer:
    """One throwaway cluster; `url` reaches its `postgres` database as the superuser."""

    bin_dir: Path
    run_as: str | None  # the OS user that owns the cluster (None: this process's user)
    fsync: bool = False  # tests: off (speed); the benchmark turns it on to compare with SQLite
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="plugbox-pg-")))

    @classmethod
    def find(cls, *, fsync: bool = False) -> PostgresServer | str:
        """A server ready to start, or the reason there cannot be one here."""
        bin_dir = _bin_dir()
        if bin_dir is None:
            return "PostgreSQL binaries not found (tools/system-deps.sh installs `postgresql`)"
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no `postgres` user to own the cluster"
            if shutil.which("runuser") is None:
                return "running as root without `runuser` (util-linux) to drop to `postgres`"
            run_as = "postgres"
        return cls(bin_dir, run_as, fsync)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "cluster"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, check=check, timeout=120
        )

    def init(self) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "--auth=trust",  # only 127.0.0.1 and a socket in our own directory
            "--no-sync",
            "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        if not self.data.exists():
            self.init()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.directory}",
            f"-c fsync={'on' if self.fsync else 'off'}",
            "-c max_connections=200",
        ]
        if not self.fsync:
            options += ["-c synchronous_commit=off", "-c full_page_writes=off"]
        done = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.directory / "server.log"),
            "-o", " ".join(options),
            "-w", "-t", "60",
            "start",
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{self.log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
            check=False,
        )  # fmt: skip

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
