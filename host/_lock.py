"""Environment layer: a plugin's hashed lock (`requirements.lock`, next to its `plugin.toml`).

Contract: `write_lock(manifest, ...)` resolves the SDK's and the plugin's requirements with
`uv pip compile --generate-hashes` inside the build sandbox and writes the lock with a header
naming a hash of its inputs; `current_lock(manifest, sdk_requirements)` is the lock's text when
its inputs still match (requirements, SDK requirements), None when there is none or it is stale
(a stale lock is never installed: the plugin's requirements or the host's SDK moved on).
Installs from a lock use `--require-hashes`, so a changed or substituted file is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._manifest import Manifest
from .sandbox import build_command

LOCK_FILE = "requirements.lock"
_HEADER = "# plugbox-lock-inputs: "
LOCK_TIMEOUT_S = 600.0


def inputs_hash(manifest: Manifest, sdk_requirements: Sequence[str]) -> str:
    material = json.dumps(
        {"requirements": sorted(manifest.requirements), "sdk": sorted(sdk_requirements)}
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def current_lock(manifest: Manifest, sdk_requirements: Sequence[str]) -> str | None:
    path = manifest.directory / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    first = text.splitlines()[0] if text else ""
    if first != _HEADER + inputs_hash(manifest, sdk_requirements):
        return None
    return text


def write_lock(
    manifest: Manifest,
    *,
    sdk_requirements: Sequence[str],
    python: str,
    uv: str,
    cache_dir: Path,
) -> Path:
    """Resolve and hash the requirements (sandboxed) and write the plugin's lock file."""
    with tempfile.TemporaryDirectory(prefix="plugbox-lock-") as scratch:
        resolved = _compile_hashed(
            manifest.name,
            [*sdk_requirements, *manifest.requirements],
            Path(scratch),
            python=python,
            uv=uv,
            cache_dir=cache_dir,
        )
    target = manifest.directory / LOCK_FILE
    header = _HEADER + inputs_hash(manifest, sdk_requirements)
    target.write_text(f"{header}\n# written by `plugbox plugins lock`; do not edit\n{resolved}")
    return target


def _compile_hashed(
    plugin: str, requirements: Sequence[str], work: Path, *, python: str, uv: str, cache_dir: Path
) -> str:
    """`uv pip compile --generate-hashes` of `requirements` in the build sandbox, which may write
    only `work` and uv's cache; the resolved requirements. Raises ValueError with uv's output."""
    (work / "requirements.in").write_text("\n".join(requirements) + "\n")
    command = [
        uv,
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
    ]
    command += ["--python", python, "-o", str(work / "out.txt"), str(work / "requirements.in")]
    argv, env = build_command(
        command,
        writable=[work, cache_dir],
        read_only=[Path(uv)],
        env={"UV_CACHE_DIR": str(cache_dir)},
    )
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=LOCK_TIMEOUT_S, check=False, env=env
    )
    if done.returncode != 0:
        raise ValueError(f"locking {plugin} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return (work / "out.txt").read_text()


def uv_executable() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")
