"""Helpers for the scale-out and chaos tests: a restartable redis-server, worker processes
(embedded or ARQ) with their logs, and the counts a fault injector reads — node results in the
run store, and deliveries per idempotency key in the ledger plugins' logs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

REDIS = shutil.which("redis-server")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PLUGINS = FIXTURES / "completion_plugins"
GRANTS = FIXTURES / "completion_grants.toml"
REPO = Path(__file__).resolve().parents[2]
LEDGERS = ("ledger_qa", "ledger_int", "ledger_hook")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """redis-server on 127.0.0.1 without persistence: a restart loses every key."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS is not None
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        anyio.run(_wait_for_port, self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no shutdown save: the data is gone, as in a crash
            self.process.wait(timeout=10)


async def _wait_for_port(port: int) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)  # redis-server is starting; bounded
                continue
            await stream.aclose()
            return


ARQ_WORKER = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    import anyio
    from host import HostConfig
    from host.completion._arq import WorkerConfig, serve_worker

    redis, plugins, grants, data, lease = sys.argv[1:6]
    logging.basicConfig(level=logging.WARNING)  # failures reach the test's log files
    if sys.argv[6:] == ["stall"]:  # takes jobs from ARQ, never claims one: the test kills it
        import host.completion._arq as arq_module

        class StallingStore(arq_module.SQLiteRunStore):
            async def claim(self, *args, **kwargs):
                await anyio.sleep_forever()

        arq_module.SQLiteRunStore = StallingStore
    host = HostConfig(plugins_root=Path(plugins), data_dir=Path(data), use_venvs=False,
                      idle_timeout_s=None, grants_file=Path(grants))
    config = WorkerConfig(redis_url=redis, host_config=host, store_path=Path(data) / "runs.db",
                          job_timeout_s=60, start_budget_s=20, lease_s=float(lease),
                          grace_s=30, reap_after_s=float(lease))
    anyio.run(serve_worker, config)
    """
)

EMBEDDED_WORKER = textwrap.dedent(
    """
    import logging, signal, sys
    from pathlib import Path
    import anyio
    from host import HostConfig, PluginHost
    from host.completion import EmbeddedWorker, SQLiteRunStore

    plugins, grants, data, lease = sys.argv[1:5]
    logging.basicConfig(level=logging.WARNING)

    async def main():
        host = HostConfig(plugins_root=Path(plugins), data_dir=Path(data), use_venvs=False,
                          idle_timeout_s=None, grants_file=Path(grants))
        async with PluginHost(host) as p, SQLiteRunStore(Path(data) / "runs.db") as store:
            worker = EmbeddedWorker(store, p, concurrency=4, lease_s=float(lease))
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                    async for _ in signals:
                        break
                await worker.drain()

    anyio.run(main)
    """
)


@dataclass
class Workers:
    """Worker processes sharing one data dir; each logs to its own file."""

    tmp: Path
    argv: list[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def arq(cls, tmp: Path, redis_url: str, lease_s: float) -> Workers:
        data = tmp / "data"
        args = [redis_url, str(PLUGINS), str(GRANTS), str(data), str(lease_s)]
        return cls(tmp, [sys.executable, "-c", ARQ_WORKER, *args])

    @classmethod
    def embedded(cls, tmp: Path, lease_s: float) -> Workers:
        args = [str(PLUGINS), str(GRANTS), str(tmp / "data"), str(lease_s)]
        return cls(tmp, [sys.executable, "-c", EMBEDDED_WORKER, *args])

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        """One more worker; `start("stall")` (ARQ) takes jobs but never claims one."""
        log = self.tmp / f"worker-{len(self.logs)}.log"
        with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [*self.argv, *extra],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.processes.append(process)
        self.logs.append(log)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its plugin processes
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


def done_nodes(db_path: Path) -> Counter[tuple[int, str]]:
    """(run, node) -> node results recorded `done` (any attempt group)."""
    with sqlite3.connect(db_path, timeout=30) as db:
        rows = db.execute("SELECT run_id, node_id FROM node_results WHERE status = 'done'")
        return Counter((int(run), str(node)) for run, node in rows)


def deliveries(data: Path) -> Counter[tuple[int, str, str]]:
    """(run, node, idempotency key) -> deliveries, from every ledger plugin's log."""
    counts: Counter[tuple[int, str, str]] = Counter()
    for name in LEDGERS:
        log = data / "plugins" / name / "data" / "deliveries.log"
        if log.exists():
            for line in log.read_text().splitlines():
                run, node, key = line.split()
                counts[(int(run), node, key)] += 1
    return counts


async def until_done(db_path: Path, expected: int, workers: Workers, bound_s: float) -> None:
    """Wait (bounded) until `expected` node results are recorded done."""
    with anyio.move_on_after(bound_s):
        while len(done_nodes(db_path)) < expected:  # noqa: ASYNC110 - other processes write
            await anyio.sleep(0.1)
        return
    pytest.fail(f"{len(done_nodes(db_path))} of {expected} node results\n{workers.tails()}")


def ledger_definition(run_tag: int = 0) -> dict[str, object]:
    """One node per ledger plugin."""
    nodes = [{"id": f"{n}-node", "type": n, "data": {"name": n}} for n in LEDGERS]
    return {"nodes": nodes, "edges": [], "tag": run_tag}


def delivered_unrecorded(data: Path, pid: int) -> int:
    """Nodes of the jobs the worker process `pid` held that the ledgers show delivered but the
    run store has no result for. Read right after killing that worker: exactly what the kill
    will make the next worker deliver again (its duplicate window, measured)."""
    with sqlite3.connect(data / "runs.db", timeout=30) as db:
        held = {
            int(run)
            for (run,) in db.execute(
                "SELECT run_id FROM jobs WHERE state = 'running' AND lease_owner LIKE ?",
                (f"%-{pid}-%",),
            )
        }
    delivered = {(run, node) for run, node, _ in deliveries(data) if run in held}
    return len(delivered - set(done_nodes(data / "runs.db")))
