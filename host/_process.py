"""Supervisor layer: one started plugin process — how it is launched, greeted and stopped.

Contract: `launch_spec(manifest, config)` is the sandbox's `LaunchSpec` for a plugin (the
interpreter of its venv running `sdk.serve`, the allowlisted environment, its limits and
permissions); `handshake(proc, manifest)` runs `initialize` under the start-up deadline and turns
every failure (timeout, exit, refusal, version mismatch) into a `HandshakeError` carrying the
stderr tail; `PluginProcess.stop()` is the bounded shutdown ladder and `kill()` the last resort.
The state machine that decides when to do which lives in `_supervisor`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from sdk.protocol import (
    PLUGIN_COOKIE_ENV,
    PLUGIN_COOKIE_VALUE,
    PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    ConnectionClosed,
    HandshakeError,
    InitializeParams,
    InitializeResult,
    Method,
    PluginError,
    PluginTimeout,
    RpcSession,
    ShutdownParams,
)

from ._egress import egress_environment
from ._manifest import Limits, Manifest
from ._runner import LaunchedProcess
from ._stderr import StderrPump
from .sandbox import LaunchSpec, SandboxLimits, SandboxPermissions, SandboxPolicy

SHUTDOWN_REPLY_S = 2.0  # a healthy plugin answers `shutdown` at once
EXIT_GRACE_S = 2.0  # time allowed for each later step of the ladder to end the process
MIN_FRAME_SIZE = 64 * 1024  # below this a plugin could not answer `spec`: a broken handshake
STDERR_DRAIN_S = 1.0  # after exit, read what is left of stderr for the crash report


@dataclass(frozen=True)
class LaunchConfig:
    """How to start a plugin: its interpreter, import path, directories and sandbox policy."""

    python: Path
    data_dir: Path
    pythonpath: tuple[Path, ...] = ()
    venv_dir: Path | None = None
    read_only_paths: tuple[Path, ...] = ()
    sandbox_policy: SandboxPolicy = SandboxPolicy.standard
    idle_timeout_s: float | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # What the operator granted (host/_grants.py); writable paths are relative to `data_dir`.
    permissions: SandboxPermissions = field(default_factory=SandboxPermissions)
    limits: Limits | None = None  # None: the manifest's own (only when no grants apply)
    egress_dir: Path | None = None  # the egress proxy's socket directory for this plugin


@dataclass
class PluginProcess:
    """A started plugin: its sandboxed process, wire session, stderr pump and exit status."""

    process: LaunchedProcess
    session: RpcSession
    stderr: StderrPump
    exited: anyio.Event = field(default_factory=anyio.Event)
    started_at: float = field(default_factory=time.monotonic)
    returncode: int | None = None
    killed_for: PluginError | None = None  # the host killed it for this (e.g. its disk quota)

    async def exited_within(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self.exited.wait()
        return self.exited.is_set()

    async def kill(self) -> None:
        """SIGKILL the process group and wait, bounded, for the exit to be seen."""
        with anyio.CancelScope(shield=True):
            self.process.kill_group(signal.SIGKILL)
            with anyio.move_on_after(EXIT_GRACE_S * 2):
                await self.exited.wait()

    async def stop(self) -> None:
        """The shutdown ladder: `shutdown`, stdin EOF, SIGTERM, SIGKILL, each step bounded."""
        with contextlib.suppress(PluginError), anyio.move_on_after(SHUTDOWN_REPLY_S):
            await self.session.request(Method.SHUTDOWN, ShutdownParams(), timeout=SHUTDOWN_REPLY_S)
        if await self.exited_within(EXIT_GRACE_S):
            return
        await self.session.aclose()  # stdin EOF: the SDK exits on it
        if await self.exited_within(EXIT_GRACE_S):
            return
        self.process.kill_group(signal.SIGTERM)
        if await self.exited_within(EXIT_GRACE_S):
            return
        self.process.kill_group(signal.SIGKILL)
        await self.exited_within(EXIT_GRACE_S * 2)


def launch_spec(m: Manifest, c: LaunchConfig) -> LaunchSpec:
    """The sandbox's `LaunchSpec` for a plugin: `python -m sdk.serve <package>` with its limits."""
    env = {
        PLUGIN_COOKIE_ENV: PLUGIN_COOKIE_VALUE,
        "PLUGBOX_PLUGIN_NAME": m.name,
        "PLUGBOX_PACKAGE_VERSION": m.version,
        "PLUGBOX_DATA_DIR": str(c.data_dir.resolve()),
        "PYTHONPATH": ":".join(str(p.resolve()) for p in (m.directory, *c.pythonpath)),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # pydantic scans every installed distribution's entry points for plugins on the first
        # model; a plugin process never has pydantic plugins, so the scan is skipped.
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        **({"PLUGBOX_COMPAT": "1"} if m.compat else {}),
        **c.extra_env,
    }
    limits = c.limits or m.limits
    writable = tuple(c.data_dir / p for p in c.permissions.writable_paths)
    for path in writable:
        _make_owned_like_data_dir(c.data_dir, path)
    if c.egress_dir is not None:
        # No route out of its network namespace but the proxy's socket, via the SDK's forwarder.
        env.update(egress_environment(c.egress_dir))
        writable = (*writable, c.egress_dir)
    return LaunchSpec(
        name=m.name,
        argv=[str(c.python), "-m", "sdk.serve", m.package],
        data_dir=c.data_dir,
        plugin_dir=m.directory,
        venv_dir=c.venv_dir,
        read_only_paths=c.read_only_paths,  # `pythonpath` is searched, not mounted
        env=env,
        limits=SandboxLimits(
            limits.memory_mb,
            limits.cpu_seconds,
            limits.open_files,
            limits.file_size_mb,
            limits.pids,
        ),
        permissions=replace(c.permissions, writable_paths=writable),
    )


def _make_owned_like_data_dir(data_dir: Path, path: Path) -> None:
    """Create a granted sub-path; owned like the data dir when that is already the plugin's."""
    owner = data_dir.stat() if data_dir.exists() else None  # a new one is given away whole
    data_dir.mkdir(parents=True, exist_ok=True)
    current = data_dir
    for part in path.relative_to(data_dir).parts:
        current = current / part
        if not current.exists():
            current.mkdir()
            if owner is not None and owner.st_uid != os.getuid():
                os.chown(current, owner.st_uid, owner.st_gid, follow_symlinks=False)


async def handshake(proc: PluginProcess, manifest: Manifest) -> InitializeResult:
    """`initialize` under the manifest's start-up deadline; a `HandshakeError` with the cause."""
    deadline = manifest.limits.startup_timeout_s
    params = InitializeParams(protocol_versions=list(SUPPORTED_PROTOCOL_VERSIONS))
    try:
        result: InitializeResult = await proc.session.request(
            Method.INITIALIZE, params, result_type=InitializeResult, timeout=deadline
        )
    except PluginTimeout:
        late = f"no handshake within {deadline:g} s"
        raise _handshake_error(proc, manifest.name, late) from None
    except ConnectionClosed:
        with anyio.move_on_after(STDERR_DRAIN_S + EXIT_GRACE_S):
            await proc.exited.wait()
        exited = f"exited during the handshake ({describe_exit(proc.returncode)})"
        raise _handshake_error(proc, manifest.name, exited) from None
    except PluginError as exc:
        refused = f"refused the handshake: {exc.message}"
        raise _handshake_error(proc, manifest.name, refused) from None
    if not MIN_FRAME_SIZE <= result.max_frame_size <= params.max_frame_size:
        raise _handshake_error(
            proc,
            manifest.name,
            f"frame size {result.max_frame_size} outside [{MIN_FRAME_SIZE}, "
            f"{params.max_frame_size}] (the plugin may only lower the host's offer)",
        )
    proc.session.limit_frames(result.max_frame_size)
    if result.protocol_version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise _handshake_error(
            proc,
            manifest.name,
            f"protocol version mismatch: plugin chose {result.protocol_version!r}, "
            f"host speaks {list(SUPPORTED_PROTOCOL_VERSIONS)} (current {PROTOCOL_VERSION})",
        )
    return result


def _handshake_error(proc: PluginProcess, plugin: str, what: str) -> HandshakeError:
    tail = proc.stderr.tail_text()
    return HandshakeError(
        f"{what}" + (f"; stderr tail:\n{tail}" if tail else ""),
        plugin=plugin,
        method=Method.INITIALIZE,
        data={"stderr_tail": tail},
    )


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
