"""Supervisor layer: one plugin process's lifecycle behind a `PluginHandle` (one state machine).

Contract: `call()` starts the process lazily (spawn under the sandbox, `initialize` under the
start-up deadline), applies the manifest's deadline, and raises the wire error tree naming the
plugin and the method. A crash fails pending calls with `PluginCrashed` (or `LimitExceeded` when
the sandbox says a limit killed it) carrying the exit status and stderr tail; the next call
restarts after a jittered backoff, and repeated crashes open a circuit (`CircuitOpen`). `aclose()`
runs the shutdown ladder — `shutdown`, close stdin, SIGTERM, SIGKILL — bounded and shielded, and
every process is reaped. Background work runs in the task group the owner passes in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc

from sdk.protocol import (
    PLUGIN_COOKIE_ENV,
    PLUGIN_COOKIE_VALUE,
    PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    CircuitOpen,
    ConnectionClosed,
    HandshakeError,
    InitializeParams,
    InitializeResult,
    LogParams,
    Method,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    RpcSession,
    ShutdownParams,
)

from ._breaker import CrashBreaker
from ._manifest import Manifest
from ._redaction import SecretScrubber
from ._stats import CallStats
from ._stderr import StderrPump
from .sandbox import LaunchSpec, RunningProcess, SandboxLimits, SandboxPermissions, SandboxPolicy
from .sandbox import launch as sandbox_launch

T = TypeVar("T")
SHUTDOWN_REPLY_S = 2.0  # a healthy plugin answers `shutdown` at once
EXIT_GRACE_S = 2.0  # time allowed for each later step of the ladder to end the process
STDERR_DRAIN_S = 1.0  # after exit, read what is left of stderr for the crash report
LIVENESS_PING_S = 2.0  # after a timeout: a plugin that cannot answer `ping` is restarted
logger = logging.getLogger("plugbox.supervisor")


class ProcessState(StrEnum):
    STOPPED = "stopped"  # no process; the next call starts one
    STARTING = "starting"  # spawned, handshake in flight
    READY = "ready"  # handshake done, serving calls
    DRAINING = "draining"  # the shutdown ladder is running
    CRASHED = "crashed"  # died unexpectedly; the next call restarts it after a backoff
    CIRCUIT_OPEN = "circuit_open"  # crashed too often; calls fail fast until the cool-down


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


@dataclass
class _Process:
    process: RunningProcess
    session: RpcSession
    stderr: StderrPump
    exited: anyio.Event = field(default_factory=anyio.Event)
    started_at: float = field(default_factory=time.monotonic)
    returncode: int | None = None


RequestHandler = Callable[[Any], Awaitable[Any]]


class PluginHandle:
    """The host's handle on one plugin: lazily started, restarted, stopped."""

    def __init__(
        self,
        manifest: Manifest,
        config: LaunchConfig | Callable[[], Awaitable[LaunchConfig]],
        task_group: anyio.abc.TaskGroup,
        *,
        breaker: CrashBreaker | None = None,
        scrubber: SecretScrubber | None = None,
    ) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self._config = config
        self.config: LaunchConfig | None = config if isinstance(config, LaunchConfig) else None
        self.state = ProcessState.STOPPED
        self.stats = CallStats()
        self.restarts = 0
        self.starts = 0
        self.last_error: PluginError | None = None
        self.handshake: InitializeResult | None = None
        self._tg = task_group
        self._breaker = breaker or CrashBreaker()
        self.scrubber = scrubber or SecretScrubber()
        self._proc: _Process | None = None
        self._start_lock = anyio.Lock()
        self._handlers: dict[str, tuple[RequestHandler, Any]] = {}
        self._last_used = time.monotonic()
        self._in_flight = 0

    # -- public API -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.process.pid if self._proc and self.state is ProcessState.READY else None

    @property
    def layers(self) -> tuple[str, ...]:
        return self._proc.process.layers if self._proc else ()

    def set_request_handler(
        self, method: str, handler: RequestHandler, *, params_type: Any
    ) -> None:
        """Serve a plugin -> host request (e.g. `context.messages`) on every future process."""
        self._handlers[method] = (handler, params_type)
        if self._proc is not None:
            self._proc.session.on_request(method, handler, params_type=params_type)

    async def call(
        self,
        method: str,
        params: Any,
        *,
        result_type: type[T] | Any = Any,
        timeout: float | None = None,
    ) -> T:
        """Call `method` in the plugin, starting or restarting it as needed."""
        self._last_used = time.monotonic()
        started = time.perf_counter()
        self._in_flight += 1
        try:
            proc = await self.start()
            result: T = await proc.session.request(
                method, params, result_type=result_type, timeout=timeout or self._deadline(method)
            )
        except ConnectionClosed:
            error = await self._crash_error(method)
            self.stats.record(method, time.perf_counter() - started, ok=False)
            raise error from None
        except PluginError as exc:
            self.stats.record(method, time.perf_counter() - started, ok=False)
            exc.plugin, exc.method = exc.plugin or self.name, exc.method or method
            if isinstance(exc, PluginTimeout):
                self._tg.start_soon(self._check_alive)
            raise
        finally:
            self._in_flight -= 1
            self._last_used = time.monotonic()
        self.stats.record(method, time.perf_counter() - started, ok=True)
        self._breaker.record_call_ok()
        return result

    async def notify(self, method: str, params: Any) -> None:
        """Send a notification to a running plugin (starting it if needed)."""
        self._last_used = time.monotonic()
        proc = await self.start()
        try:
            await proc.session.notify(method, params)
        except ConnectionClosed:
            raise await self._crash_error(method) from None

    async def start(self) -> _Process:
        """The ready process, started (or restarted after a backoff) if there is none."""
        proc = self._proc
        if proc is not None and self.state is ProcessState.READY:
            return proc
        async with self._start_lock:
            if self._proc is not None and self.state is ProcessState.READY:
                return self._proc
            await self._respect_breaker()
            return await self._start_once()

    async def aclose(self) -> None:
        """Stop the process through the shutdown ladder (shielded, bounded)."""
        with anyio.CancelScope(shield=True):
            proc = self._proc
            if proc is None or proc.exited.is_set():
                self.state = ProcessState.STOPPED
                return
            self.state = ProcessState.DRAINING
            await self._ladder(proc)
            self.state = ProcessState.STOPPED

    def status(self) -> dict[str, Any]:
        """Live figures for `/api/v1/plugins` and `/metrics` (no plugin data in here)."""
        proc = self._proc if self.state is ProcessState.READY else None
        return {
            "name": self.name,
            "version": self.manifest.version,
            "state": self.state.value,
            "sandbox_layers": list(self.layers),
            "pid": proc.process.pid if proc else None,
            "rss_bytes": _rss_bytes(proc.process.pid) if proc else None,
            "uptime_s": round(time.monotonic() - proc.started_at, 3) if proc else None,
            "starts": self.starts,
            "restarts": self.restarts,
            "calls": self.stats.calls,
            "errors": self.stats.errors,
            "methods": self.stats.as_dict(),
            "last_error": str(self.last_error) if self.last_error else None,
        }

    # -- starting -------------------------------------------------------------------------------

    async def _respect_breaker(self) -> None:
        wait = self._breaker.open_for()
        if wait is not None:
            self.state = ProcessState.CIRCUIT_OPEN
            raise CircuitOpen(
                f"circuit open after repeated crashes; next try in {wait:.1f} s "
                f"(last error: {self.last_error})",
                plugin=self.name,
            )
        await anyio.sleep(self._breaker.delay())

    async def _start_once(self) -> _Process:
        self.state = ProcessState.STARTING
        self.starts += 1
        self.restarts += 1 if self.starts > 1 else 0
        config = await self._resolve_config()
        process = await sandbox_launch(self._launch_spec(config), config.sandbox_policy)
        session = RpcSession(await process.open_wire(), name=self.name)
        proc = _Process(process, session, StderrPump(self.name, self.scrubber))
        self._register(session)
        self._proc = proc
        self._tg.start_soon(self._supervise, proc)
        try:
            self.handshake = await self._handshake(proc)
        except PluginError as exc:
            await self._kill(proc)
            self._breaker.record_crash()
            self.last_error = exc
            self.state = ProcessState.CRASHED
            raise
        self.state = ProcessState.READY
        self._breaker.record_start()
        if config.idle_timeout_s:
            self._tg.start_soon(self._idle_watch, proc, config.idle_timeout_s)
        return proc

    async def _resolve_config(self) -> LaunchConfig:
        if self.config is None:
            try:
                self.config = await self._config()  # type: ignore[operator]
            except PluginError as exc:
                self.state = ProcessState.CRASHED
                self.last_error = exc
                raise
        return self.config

    def _launch_spec(self, c: LaunchConfig) -> LaunchSpec:
        m = self.manifest
        env = {
            PLUGIN_COOKIE_ENV: PLUGIN_COOKIE_VALUE,
            "PLUGBOX_PLUGIN_NAME": m.name,
            "PLUGBOX_PACKAGE_VERSION": m.version,
            "PLUGBOX_DATA_DIR": str(c.data_dir.resolve()),
            "PYTHONPATH": ":".join(str(p.resolve()) for p in (m.directory, *c.pythonpath)),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **({"PLUGBOX_COMPAT": "1"} if m.compat else {}),
            **c.extra_env,
        }
        limits = m.limits
        return LaunchSpec(
            name=m.name,
            argv=[str(c.python), "-m", "sdk.serve", m.package],
            data_dir=c.data_dir,
            plugin_dir=m.directory,
            venv_dir=c.venv_dir,
            read_only_paths=(*c.pythonpath, *c.read_only_paths),
            env=env,
            limits=SandboxLimits(
                limits.memory_mb,
                limits.cpu_seconds,
                limits.open_files,
                limits.file_size_mb,
                limits.pids,
            ),
            permissions=SandboxPermissions(
                network=m.permissions.network,
                env_keys=m.permissions.env,
                writable_paths=tuple(Path(p) for p in m.permissions.writable_paths),
            ),
        )

    def _register(self, session: RpcSession) -> None:
        for method, (handler, params_type) in self._handlers.items():
            session.on_request(method, handler, params_type=params_type)
        session.on_notification(Method.LOG, self._on_log, params_type=LogParams)

    async def _on_log(self, params: LogParams) -> None:
        logging.getLogger(f"plugbox.plugins.{self.name}").info("%s", params.message)

    async def _handshake(self, proc: _Process) -> InitializeResult:
        deadline = self.manifest.limits.startup_timeout_s
        params = InitializeParams(protocol_versions=list(SUPPORTED_PROTOCOL_VERSIONS))
        try:
            result: InitializeResult = await proc.session.request(
                Method.INITIALIZE, params, result_type=InitializeResult, timeout=deadline
            )
        except PluginTimeout:
            raise self._handshake_error(proc, f"no handshake within {deadline:g} s") from None
        except ConnectionClosed:
            with anyio.move_on_after(STDERR_DRAIN_S + EXIT_GRACE_S):
                await proc.exited.wait()
            raise self._handshake_error(
                proc, f"exited during the handshake ({_describe(proc.returncode)})"
            ) from None
        except PluginError as exc:
            raise self._handshake_error(proc, f"refused the handshake: {exc.message}") from None
        if result.protocol_version not in SUPPORTED_PROTOCOL_VERSIONS:
            raise self._handshake_error(
                proc,
                f"protocol version mismatch: plugin chose {result.protocol_version!r}, "
                f"host speaks {list(SUPPORTED_PROTOCOL_VERSIONS)} (current {PROTOCOL_VERSION})",
            )
        return result

    def _handshake_error(self, proc: _Process, what: str) -> HandshakeError:
        tail = proc.stderr.tail_text()
        return HandshakeError(
            f"{what}" + (f"; stderr tail:\n{tail}" if tail else ""),
            plugin=self.name,
            method=Method.INITIALIZE,
            data={"stderr_tail": tail},
        )

    # -- running and dying ----------------------------------------------------------------------

    async def _supervise(self, proc: _Process) -> None:
        """Own the process's reader tasks; when it exits, reap it and record why."""
        async with anyio.create_task_group() as readers:
            readers.start_soon(proc.session.run)
            readers.start_soon(proc.stderr.run, proc.process.stderr)
            proc.returncode = await proc.process.wait()
            proc.process.kill_group(signal.SIGKILL)  # grandchildren die with the plugin
            with anyio.move_on_after(STDERR_DRAIN_S):
                await proc.session.wait_closed()  # late replies and log lines are still read
            readers.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await proc.process.cleanup()
        self._on_exit(proc)
        proc.exited.set()

    def _on_exit(self, proc: _Process) -> None:
        if self.state is ProcessState.DRAINING or self._proc is not proc:
            return
        if self.state is ProcessState.READY:
            self._breaker.record_crash()
            self.last_error = self._exit_error(proc, method=None)
            self.state = (
                ProcessState.CIRCUIT_OPEN if self._breaker.is_open else ProcessState.CRASHED
            )
            logger.warning("plugin %r crashed: %s", self.name, self.last_error)
        elif self.state is ProcessState.STARTING:
            self.last_error = self._exit_error(proc, method=Method.INITIALIZE)

    def _exit_error(self, proc: _Process, method: str | None) -> PluginCrashed:
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        tail = proc.stderr.tail_text()
        limit = proc.process.diagnose(code, tail)
        if limit is not None:
            limit.method = method
            limit.data["stderr_tail"] = tail
            return limit
        return PluginCrashed(
            f"plugin process {_describe(code)}" + (f"; stderr tail:\n{tail}" if tail else ""),
            plugin=self.name,
            method=method,
            data={"returncode": code, "stderr_tail": tail},
        )

    async def _crash_error(self, method: str) -> PluginError:
        proc = self._proc
        if proc is None:
            return PluginCrashed("plugin process is gone", plugin=self.name, method=method)
        with anyio.move_on_after(STDERR_DRAIN_S + EXIT_GRACE_S):
            await proc.exited.wait()
        error = self._exit_error(proc, method)
        return error

    async def _check_alive(self) -> None:
        proc = self._proc
        if proc is None or self.state is not ProcessState.READY:
            return
        try:
            await proc.session.request(Method.PING, {}, timeout=LIVENESS_PING_S)
        except PluginError:
            logger.warning(
                "plugin %r does not answer ping after a timeout; restarting it", self.name
            )
            await self._kill(proc)

    async def _idle_watch(self, proc: _Process, idle_s: float) -> None:
        while self._proc is proc and not proc.exited.is_set():
            remaining = self._last_used + idle_s - time.monotonic()
            if remaining <= 0 and self._in_flight == 0:
                logger.info("plugin %r idle for %g s; stopping it", self.name, idle_s)
                await self.aclose()
                return
            await anyio.sleep(max(remaining, 0.05))

    async def _kill(self, proc: _Process) -> None:
        with anyio.CancelScope(shield=True):
            proc.process.kill_group(signal.SIGKILL)
            with anyio.move_on_after(EXIT_GRACE_S * 2):
                await proc.exited.wait()

    async def _ladder(self, proc: _Process) -> None:
        with contextlib.suppress(PluginError), anyio.move_on_after(SHUTDOWN_REPLY_S):
            await proc.session.request(Method.SHUTDOWN, ShutdownParams(), timeout=SHUTDOWN_REPLY_S)
        if await _exited_within(proc, EXIT_GRACE_S):
            return
        await proc.session.aclose()  # stdin EOF: the SDK exits on it
        if await _exited_within(proc, EXIT_GRACE_S):
            return
        proc.process.kill_group(signal.SIGTERM)
        if await _exited_within(proc, EXIT_GRACE_S):
            return
        proc.process.kill_group(signal.SIGKILL)
        await _exited_within(proc, EXIT_GRACE_S * 2)

    def _deadline(self, method: str) -> float:
        limits = self.manifest.limits
        return (
            limits.completion_timeout_s
            if method == Method.COMPLETION_RUN
            else limits.call_timeout_s
        )


async def _exited_within(proc: _Process, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        await proc.exited.wait()
    return proc.exited.is_set()


def _describe(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
