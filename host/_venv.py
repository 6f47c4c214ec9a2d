"""Environment layer: one virtualenv per plugin (shared when the requirements are the same).

Contract: a plugin's venv holds the SDK (copied, `sdk/` only: the host is not importable there),
the SDK's few dependencies (read from this distribution's metadata) and the plugin's
requirements, never fastapi, pipecat or the host unless the plugin itself requires them. Venvs
are keyed by a hash of the requirements, the interpreter and the SDK's source; an unchanged key
reuses the venv without running an installer, a changed one builds a new venv. Builds use uv when
available (pip otherwise), run under a file lock, go to a temporary directory renamed into place
when complete, and keep the installer's output for the error of a failed build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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

import sdk
from sdk.protocol import PluginError

from ._manifest import Manifest

MARKER = ".plugbox-venv.json"
VENV_LAYOUT = 2  # bumped when what a build puts in a venv changes (2: bytecode precompiled)
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
    return Path(sdk.__file__).resolve().parent


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
        return ["pydantic>=2.10,<3", "msgspec>=0.19", "anyio>=4.4,<5"]
    return [req.split(";")[0].strip() for req in requires if "extra ==" not in req]


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

    def key_for(self, manifest: Manifest) -> str:
        python = manifest.python or str(base_interpreter())
        material = json.dumps(
            {
                "requirements": sorted(manifest.requirements),
                "sdk_requirements": sdk_requirements(),
                "python": python,
                "sdk": self._sdk_hash,
                "layout": VENV_LAYOUT,
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    async def ensure(self, manifest: Manifest) -> VenvInfo:
        """The venv for `manifest`, built if missing (in a worker thread, under a file lock)."""
        return await anyio.to_thread.run_sync(self.ensure_sync, manifest)

    def ensure_sync(self, manifest: Manifest) -> VenvInfo:
        key = self.key_for(manifest)
        path = self.root / key
        info = VenvInfo(path, path / "bin" / "python", key, built=False)
        if (path / MARKER).exists():
            return info
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f"{key}.lock"):
            if (path / MARKER).exists():  # another host built it while we waited
                return info
            self._build(manifest, path, key)
        return VenvInfo(path, path / "bin" / "python", key, built=True)

    def _build(self, manifest: Manifest, path: Path, key: str) -> None:
        staging = path.with_name(f"{key}.building-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        python = manifest.python or str(base_interpreter())
        self.progress(f"{manifest.name}: creating venv {key}")
        self._run(manifest, _venv_command(staging, python))
        requirements = [*sdk_requirements(), *manifest.requirements]
        self.progress(f"{manifest.name}: installing {', '.join(requirements)}")
        self._run(manifest, _install_command(staging, requirements))
        self.installs += 1
        site = _site_packages(staging)
        shutil.copytree(
            sdk_source_dir(), site / "sdk", ignore=shutil.ignore_patterns("__pycache__")
        )
        # Plugins run with a read-only venv, so Python could never cache bytecode there: without
        # this every start would compile pydantic & co. from source (measured: 0.28 s of CPU per
        # start for the imports alone, 0.15 s compiled).
        self._run(manifest, [str(staging / "bin" / "python"), "-m", "compileall", "-q", str(site)])
        marker = {"key": key, "requirements": requirements, "sdk": self._sdk_hash}
        (staging / MARKER).write_text(json.dumps(marker, indent=2))
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
        self.progress(f"{manifest.name}: venv ready")

    def _run(self, manifest: Manifest, command: list[str]) -> None:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
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


def _venv_command(target: Path, python: str) -> list[str]:
    uv = _uv()
    if uv:
        return [uv, "venv", "--quiet", "--python", python, str(target)]
    return [python, "-m", "venv", str(target)]


def _install_command(target: Path, requirements: list[str]) -> list[str]:
    uv = _uv()
    python = str(target / "bin" / "python")
    if uv:
        return [uv, "pip", "install", "--quiet", "--python", python, *requirements]
    return [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements]


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise VenvBuildError(f"no site-packages in {venv}")
    return found[0]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
