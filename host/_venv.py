"""Environment layer: one virtualenv per plugin (shared when the requirements are the same).

Contract: a plugin's venv holds the SDK (copied, `sdk/` only: the host is not importable there),
the SDK's few dependencies (read from this distribution's metadata) and the plugin's
requirements, never fastapi, pipecat or the host unless the plugin itself requires them. Venvs
are keyed by a hash of the requirements, the interpreter and the SDK's source; an unchanged key
reuses the venv without running an installer, a changed one builds a new venv. Builds use uv when
available (pip otherwise), run under a file lock, go to a temporary directory renamed into place
when complete, and keep the installer's output for the error of a failed build. A failed build
removes its staging directory; one an interrupted build (SIGKILL) left is removed by the next
build on the same root once no live build holds that key's lock.

Every installer step runs in the build sandbox (`sandbox.build_command`: no host environment
beyond the operator's index settings, no capabilities, only the venv being built and the package
cache writable). Requirements reach the installer through a file, never argv. A plugin's
`requirements.lock` (`plugbox plugins lock`, hashed) is installed with `--require-hashes`;
`require_lock` (strict) refuses a plugin with requirements and no current lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import anyio

from sdk.protocol import PluginError

from ._lock import LOCK_FILE, current_lock
from ._manifest import Manifest
from .sandbox import build_command

MARKER = ".plugbox-venv.json"
VENV_LAYOUT = 3  # bumped when what a build puts in a venv changes (3: sandboxed, locks)
INSTALL_TIMEOUT_S = 600.0  # a cold install of a heavy requirement on a slow mirror
OUTPUT_TAIL = 4000  # characters of installer output kept for the error
Progress = Callable[[str], None]


class VenvBuildError(PluginError):
    """Building a plugin's virtualenv failed; the message carries the installer's output tail."""


@dataclass(frozen=True)
class VenvInfo:
    path: Path
    python: Path
    key: str
    built: bool  # False when an existing venv was reused


def sdk_source_dir() -> Path:
    """The SDK package's directory, found without importing the SDK (the host imports only
    `sdk.protocol`)."""
    spec = importlib.util.find_spec("sdk")
    if spec is None or spec.origin is None:
        raise RuntimeError("the plugbox SDK (package `sdk`) is not installed")
    return Path(spec.origin).resolve().parent


def host_venv() -> Path | None:
    """The virtualenv the host runs in, if any: what a plugin on the host's interpreter imports
    from (`use_venvs = False`)."""
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix).resolve()


def sdk_hash() -> str:
    """A hash of every file of the SDK package (so an SDK change rebuilds venvs and caches)."""
    digest = hashlib.sha256()
    root = sdk_source_dir()
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def sdk_requirements() -> list[str]:
    """The SDK's runtime dependencies: the distribution's requirements without an extra."""
    try:
        requires = metadata.requires("plugbox") or []
    except metadata.PackageNotFoundError:
        return [
            "pydantic>=2.10,<3",
            "msgspec>=0.19",
            "anyio>=4.4,<5",
            "uvloop>=0.19; sys_platform == 'linux'",
        ]
    # Environment markers stay (uvloop is Linux-only); requirements of an extra are not the SDK's.
    return [req for req in requires if "extra ==" not in req]


def base_interpreter() -> Path:
    """The interpreter venvs are made from: the host's base Python, never the host's venv."""
    return Path(getattr(sys, "_base_executable", sys.executable)).resolve()


class VenvBuilder:
    """Builds and reuses plugin venvs under `root`."""

    def __init__(self, root: Path, *, progress: Progress | None = None) -> None:
        self.root = root
        self.progress = progress or (lambda _message: None)
        self.installs = 0  # installer runs by this builder (tests assert reuse with it)
        self._sdk_hash = sdk_hash()

    def key_for(self, manifest: Manifest, python: str | None = None) -> str:
        """The venv's key; `python` is the interpreter the operator granted (default: base)."""
        python = python or str(base_interpreter())
        lock = current_lock(manifest, sdk_requirements())
        material = json.dumps(
            {
                "requirements": sorted(manifest.requirements),
                "lock": hashlib.sha256(lock.encode()).hexdigest() if lock else None,
                "sdk_requirements": sdk_requirements(),
                "python": python,
                "sdk": self._sdk_hash,
                "layout": VENV_LAYOUT,
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    async def ensure(
        self, manifest: Manifest, *, python: str | None = None, require_lock: bool = False
    ) -> VenvInfo:
        """The venv for `manifest`, built if missing (in a worker thread, under a file lock)."""
        return await anyio.to_thread.run_sync(
            lambda: self.ensure_sync(manifest, python=python, require_lock=require_lock)
        )

    def ensure_sync(
        self, manifest: Manifest, *, python: str | None = None, require_lock: bool = False
    ) -> VenvInfo:
        lock = current_lock(manifest, sdk_requirements())
        if require_lock and manifest.requirements and lock is None:
            raise VenvBuildError(
                f"plugin {manifest.name!r} has requirements but no current {LOCK_FILE}; the "
                f"strict policy installs only locked, hashed requirements: run `plugbox plugins "
                f"lock {manifest.directory}`",
                plugin=manifest.name,
            )
        key = self.key_for(manifest, python)
        path = self.root / key
        info = VenvInfo(path, path / "bin" / "python", key, built=False)
        if (path / MARKER).exists():
            return info
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f"{key}.lock"):
            if (path / MARKER).exists():  # another host built it while we waited
                return info
            self._sweep_stale_builds(key)
            self._build(manifest, path, key, python or str(base_interpreter()), lock)
        return VenvInfo(path, path / "bin" / "python", key, built=True)

    def _sweep_stale_builds(self, key: str) -> None:
        """Remove what interrupted builds (a SIGKILL, a power cut) left: a staging dir whose
        key's build lock nobody holds belongs to no live build. `key`'s lock is ours already."""
        for staging in self.root.glob("*.building-*"):
            owner = staging.name.partition(".building-")[0]
            if owner == key:
                shutil.rmtree(staging, ignore_errors=True)
                continue
            with _try_locked(self.root / f"{owner}.lock") as free:
                if free:
                    shutil.rmtree(staging, ignore_errors=True)

    def _build(
        self, manifest: Manifest, path: Path, key: str, python: str, lock: str | None
    ) -> None:
        staging = path.with_name(f"{key}.building-{os.getpid()}")
        staging.mkdir(parents=True)
        try:
            self._build_in(manifest, staging, key, python, lock)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # the error keeps the installer's output
            raise
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
        self.progress(f"{manifest.name}: venv ready")

    def _build_in(
        self, manifest: Manifest, staging: Path, key: str, python: str, lock: str | None
    ) -> None:
        self.progress(f"{manifest.name}: creating venv {key}")
        self._run(manifest, staging, _venv_command(staging, python))
        requirements = [*sdk_requirements(), *manifest.requirements]
        listing = staging / ".plugbox-requirements.txt"
        listing.write_text(lock if lock is not None else "\n".join(requirements) + "\n")
        shown = f"{LOCK_FILE} (hashes required)" if lock is not None else ", ".join(requirements)
        self.progress(f"{manifest.name}: installing {shown}")
        self._run(manifest, staging, _install_command(staging, listing, hashed=lock is not None))
        self.installs += 1
        site = _site_packages(staging)
        _replace_with_copy(sdk_source_dir(), site / "sdk")
        # Plugins run with a read-only venv, so Python could never cache bytecode there: without
        # this every start would compile pydantic & co. from source (measured: 0.28 s of CPU per
        # start for the imports alone, 0.15 s compiled). It runs the venv's interpreter (and any
        # .pth a requirement installed), so it is sandboxed like the installer.
        compile_step = [str(staging / "bin" / "python"), "-m", "compileall", "-q", str(site)]
        self._run(manifest, staging, compile_step)
        marker = {"key": key, "requirements": requirements, "sdk": self._sdk_hash}
        _write_new(staging / MARKER, json.dumps(marker, indent=2))

    def _run(self, manifest: Manifest, staging: Path, command: list[str]) -> None:
        """One installer step in the build sandbox: only `staging` and the cache writable."""
        uv = _uv()
        argv, env = build_command(
            command,
            writable=[staging, uv_cache_dir()],
            read_only=[Path(uv)] if uv else [],
            env={"UV_CACHE_DIR": str(uv_cache_dir())},
        )
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
                env=env,
                cwd="/",
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VenvBuildError(f"installer failed to run: {exc}", plugin=manifest.name) from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
            raise VenvBuildError(
                f"building the venv failed ({' '.join(command[:3])} ... exit {done.returncode}):\n"
                f"{output}",
                plugin=manifest.name,
                data={"output": output},
            )


def _uv() -> str | None:
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin

        return str(find_uv_bin())
    return shutil.which("uv")


def uv_cache_dir() -> Path:
    """The host's uv cache (shared by builds: a lock's hashes catch a tampered entry)."""
    configured = os.environ.get("UV_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uv"


def _venv_command(target: Path, python: str) -> list[str]:
    uv = _uv()
    if uv:
        return [uv, "venv", "--quiet", "--allow-existing", "--python", python, str(target)]
    return [python, "-m", "venv", str(target)]


def _install_command(target: Path, listing: Path, *, hashed: bool) -> list[str]:
    uv = _uv()
    python = str(target / "bin" / "python")
    extra = ["--require-hashes"] if hashed else []
    if uv:
        return [uv, "pip", "install", "--quiet", "--python", python, *extra, "-r", str(listing)]
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return [*pip, *extra, "-r", str(listing)]


def _site_packages(venv: Path) -> Path:
    """site-packages, refused unless it really lies inside `venv` (the build could plant links)."""
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found or not found[0].resolve().is_relative_to(venv.resolve()):
        raise VenvBuildError(f"no site-packages inside {venv}")
    return found[0]


def _replace_with_copy(source: Path, target: Path) -> None:
    """Copy the SDK in; whatever the build left at `target` (a link, say) is removed first."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


def _write_new(path: Path, text: str) -> None:
    """Write a file the build cannot redirect: a planted link at `path` is removed, not followed."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)


@contextlib.contextmanager
def _try_locked(path: Path) -> Iterator[bool]:
    """Whether `path`'s lock was free (held for the block when it was); never waits."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
