"""Supervisor layer: one plugin process's lifecycle behind a `PluginHandle` (one state machine).

Contract: `call()` starts the process lazily (spawn under the sandbox, `initialize` under the
start-up deadline), applies the manifest's deadline, and raises the wire error tree naming the
plugin and the method. A crash fails pending calls with `PluginCrashed` (or `LimitExceeded` when
the sandbox says a limit killed it) carrying the exit status and stderr tail; the next call
restarts after a jittered backoff, and repeated crashes open a circuit (`CircuitOpen`). `aclose()`
runs the shutdown ladder — `shutdown`, close stdin, SIGTERM, SIGKILL — bounded and shielded, and
every process is reaped. Background work runs in the task group the owner passes in. The steps
on one process (its launch spec, the handshake, the ladder itself) are `_process`'s.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc

from sdk.protocol import (
    CallMethod,
    Calls,
    CircuitOpen,
    ConnectionClosed,
    InitializeResult,
    LimitExceeded,
    LogParams,
    Method,
    Notifications,
    NotifyMethod,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    RpcSession,
    SecretScrubber,
)

from ._breaker import BACKOFF_BASE_S, FORK_BACKOFF_BASE_S, CrashBreaker
from ._counters import COUNTERS, DENIALS
from ._disk import check_disk, watch_disk
from ._fresh import call_in_fresh_fork
from ._manifest import Manifest
from ._process import (
    EXIT_GRACE_S,
    STDERR_DRAIN_S,
    LaunchConfig,
    PluginProcess,
    describe_exit,
    handshake,
    launch_spec,
)
from ._procinfo import plugin_pid, rss_bytes
from ._runner import Runner
from ._stats import CallStats
from ._stderr import LINES_PER_S, Budget, StderrPump
from ._zygote import Zygote
from .sandbox import launch as sandbox_launch

P = TypeVar("P")
R = TypeVar("R")
LIVENESS_PING_S = 2.0  # after a timeout: a plugin that cannot answer `ping` is restarted
RECENT_ERRORS = 10  # failed calls kept per plugin (with the remote traceback) for the dashboard
logger = logging.getLogger("plugbox.supervisor")


class ProcessState(StrEnum):
    STOPPED = "stopped"  # no process; the next call starts one
    STARTING = "starting"  # spawned, handshake in flight
    READY = "ready"  # handshake done, serving calls
    DRAINING = "draining"  # the shutdown ladder is running
    CRASHED = "crashed"  # died unexpectedly; the next call restarts it after a backoff
    CIRCUIT_OPEN = "circuit_open"  # crashed too often; calls fail fast until the cool-down


RequestHandler = Callable[[Any], Awaitable[Any]]
ExitListener = Callable[[PluginProcess, PluginError | None], None]


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
        runner: Runner = sandbox_launch,
        zygote: bool = False,
    ) -> None:
        self.manifest = manifest
        self.name = manifest.name
        self.scrubber = scrubber or SecretScrubber()
        # With a zygote, the runner launches one sandbox that imports the plugin once and forks a
        # fresh worker per start (host/_zygote.py): a crash costs a fork, not a cold start.
        self.zygote = (
            Zygote(
                self.name,
                runner,
                task_group,
                self.scrubber,
                spawn_timeout_s=manifest.limits.startup_timeout_s,
            )
            if zygote
            else None
        )
        self._runner: Runner = self.zygote or runner  # the sandbox by default, a fake in tests
        self._config = config
        self.config: LaunchConfig | None = config if isinstance(config, LaunchConfig) else None
        self.state = ProcessState.STOPPED
        self.stats = CallStats()
        self.restarts = 0
        self.starts = 0
        self.last_error: PluginError | None = None
        self.handshake: InitializeResult | None = None
        self._tg = task_group
        self._breaker = breaker or CrashBreaker(
            base_s=FORK_BACKOFF_BASE_S if zygote else BACKOFF_BASE_S
        )
        self._log_budget = Budget()  # `log` notifications: over budget, dropped and counted
        self._proc: PluginProcess | None = None
        self._start_lock = anyio.Lock()
        self._handlers: dict[str, tuple[RequestHandler, Any]] = {}
        self._exit_listeners: list[ExitListener] = []
        self._last_used = time.monotonic()
        self._in_flight = 0
        self._plugin_pid: tuple[PluginProcess, int] | None = None  # resolved once per process
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)

    # -- public API -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.process.pid if self._proc and self.state is ProcessState.READY else None

    @property
    def plugin_pid(self) -> int | None:
        """The pid of the plugin's own process (below bwrap, when bwrap wraps it)."""
        proc = self._proc if self.state is ProcessState.READY else None
        if proc is None:
            return None
        if self._plugin_pid is None or self._plugin_pid[0] is not proc:
            found = plugin_pid(proc.process.pid)
            if found is None:
                return None
            self._plugin_pid = (proc, found)
        return self._plugin_pid[1]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def layers(self) -> tuple[str, ...]:
        return self._proc.process.layers if self._proc else ()

    def set_request_handler(
        self, method: CallMethod[P, R], handler: Callable[[P], Awaitable[R]]
    ) -> None:
        """Serve a plugin -> host request (e.g. `context.messages`) on every future process."""
        self._handlers[method.name] = (handler, method.params)
        if self._proc is not None:
            self._proc.session.on_request(method.name, handler, params_type=method.params)

    def on_exit(self, listener: ExitListener) -> None:
        """Call `listener(process, error)` each time one of this plugin's processes ends."""
        self._exit_listeners.append(listener)

    @property
    def process(self) -> PluginProcess | None:
        """The ready process, if there is one (what a live session binds to)."""
        return self._proc if self.state is ProcessState.READY else None

    async def call(
        self,
        method: CallMethod[P, R],
        params: P,
        *,
        timeout: float | None = None,
        process: PluginProcess | None = None,
    ) -> R:
        """Call `method` in the plugin, starting or restarting it as needed.

        With `process`, the call goes to that process only: if it is no longer the plugin's ready
        process (it crashed, stopped or was replaced), the call fails and nothing is started.
        """
        name = method.name
        self._last_used = time.monotonic()
        started = time.perf_counter()
        self._in_flight += 1
        try:
            if process is None and self._fresh_process(name):
                result: R = await self._call_fresh(method, params, timeout)
            else:
                # The ready process without a coroutine per call; `start` when there is none.
                proc = self._bound(process, name) if process is not None else self.process
                if proc is None:
                    proc = await self.start()
                result = await proc.session.request(
                    name, params, result_type=method.result, timeout=timeout or self._deadline(name)
                )
        except ConnectionClosed:
            error = await self._crash_error(name)
            self.stats.record(name, time.perf_counter() - started, ok=False)
            self._remember(error)
            raise error from None
        except PluginError as exc:
            self.stats.record(name, time.perf_counter() - started, ok=False)
            exc.plugin, exc.method = exc.plugin or self.name, exc.method or name
            self._remember(exc)
            if isinstance(exc, PluginTimeout):
                self._tg.start_soon(self._check_alive)
            raise
        finally:
            self._in_flight -= 1
            self._last_used = time.monotonic()
        self.stats.record(name, time.perf_counter() - started, ok=True)
        self._breaker.record_call_ok()
        return result

    def _fresh_process(self, method: str) -> bool:
        completion = self.manifest.completion
        return method == Method.COMPLETION_RUN and completion.fresh_process and bool(self.zygote)

    async def _call_fresh(self, method: CallMethod[P, R], params: P, timeout: float | None) -> R:
        """The call in a worker forked for it alone (`[completion] fresh_process`)."""
        await self.start()  # the zygote runs (its serving worker answers everything else)
        assert self.zygote is not None
        return await call_in_fresh_fork(
            self.zygote,
            self.manifest,
            method,
            params,
            timeout=timeout or self._deadline(method.name),
            scrubber=self.scrubber,
            prepare=self._register,
            exit_error=self._exit_error,
        )

    async def notify(self, method: NotifyMethod[P], params: P, *, process: PluginProcess) -> None:
        """Send a notification to `process`; never starts one (a notification has no session)."""
        self._last_used = time.monotonic()
        proc = self._bound(process, method.name)
        try:
            await proc.session.notify(method.name, params)
        except ConnectionClosed:
            raise await self._crash_error(method.name) from None

    def _bound(self, process: PluginProcess, method: str) -> PluginProcess:
        """`process` if it still serves this plugin; else the error that ended it."""
        if process is self._proc and self.state is ProcessState.READY:
            return process
        if process.exited.is_set() and process.returncode is not None:
            raise self._exit_error(process, method)
        raise PluginCrashed(
            "the plugin process this session was opened on has stopped",
            plugin=self.name,
            method=method,
        )

    async def start(self) -> PluginProcess:
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
        """Stop the process through the shutdown ladder (shielded, bounded), and its zygote."""
        with anyio.CancelScope(shield=True):
            proc = self._proc
            if proc is not None and not proc.exited.is_set():
                self.state = ProcessState.DRAINING
                await proc.stop()
            if self.zygote is not None:
                await self.zygote.aclose()  # the next start imports afresh (e.g. a new version)
            self.state = ProcessState.STOPPED

    async def restart(self) -> PluginProcess:
        """Stop the process through the shutdown ladder (if any) and start a fresh one."""
        async with self._start_lock:
            await self.aclose()
            return await self._start_once()  # counted as a restart when it had started before

    def _remember(self, error: PluginError) -> None:
        data = error.data if isinstance(error.data, dict) else {}
        self.recent_errors.append(
            {
                "ts": time.time(),
                "method": error.method,
                "type": type(error).__name__,
                "message": self.scrubber.scrub_text(error.message),
                "traceback": self.scrubber.scrub_text(str(data.get("traceback") or "")) or None,
            }
        )

    def status(self) -> dict[str, Any]:
        """Live figures for `/api/v1/plugins` and `/metrics` (no plugin data in here)."""
        proc = self._proc if self.state is ProcessState.READY else None
        pid = self.plugin_pid
        return {
            "name": self.name,
            "version": self.manifest.version,
            "state": self.state.value,
            "sandbox_layers": list(self.layers),
            "pid": pid,
            "wrapper_pid": proc.process.pid if proc and proc.process.pid != pid else None,
            "rss_bytes": rss_bytes(pid) if pid else None,
            "in_flight": self._in_flight,
            "uptime_s": round(time.monotonic() - proc.started_at, 3) if proc else None,
            "starts": self.starts,
            "restarts": self.restarts,
            "calls": self.stats.calls,
            "errors": self.stats.errors,
            "methods": self.stats.as_dict(),
            "last_error": str(self.last_error) if self.last_error else None,
            "recent_errors": list(self.recent_errors),
        }

    # -- starting -------------------------------------------------------------------------------

    async def _respect_breaker(self) -> None:
        wait = self._breaker.open_for()
        if wait is not None:
            self.state = ProcessState.CIRCUIT_OPEN
            COUNTERS.inc(DENIALS, plugin=self.name, reason="circuit_open")
            raise CircuitOpen(
                f"circuit open after repeated crashes; next try in {wait:.1f} s "
                f"(last error: {self.last_error})",
                plugin=self.name,
                data={"retry_after_s": round(wait, 3)},
            )
        await anyio.sleep(self._breaker.delay())

    async def _start_once(self) -> PluginProcess:
        self.state = ProcessState.STARTING
        self.starts += 1
        self.restarts += 1 if self.starts > 1 else 0
        config = await self._resolve_config()
        if self.zygote is not None:  # its first fork waits for the imports: the start-up deadline
            self.zygote.spawn_timeout_s = self.manifest.limits.startup_timeout_s
        disk_mb = (config.limits or self.manifest.limits).disk_mb
        try:
            await check_disk(self.name, config.data_dir, disk_mb)  # over quota: not started
            process = await self._runner(launch_spec(self.manifest, config), config.sandbox_policy)
        except PluginError as exc:  # e.g. a limit above the host's hard limit: never "starting"
            self._breaker.record_crash()
            self.last_error = exc
            self.state = ProcessState.CRASHED
            raise
        session = RpcSession(await process.open_wire(), name=self.name)
        proc = PluginProcess(process, session, StderrPump(self.name, self.scrubber))
        self._register(session)
        self._proc = proc
        self._tg.start_soon(self._supervise, proc)
        try:
            self.handshake = await handshake(proc, self.manifest)
        except PluginError as exc:
            await proc.kill()
            if self.zygote is not None:  # e.g. a failed import: the next start imports again
                await self.zygote.aclose()
            self._breaker.record_crash()
            self.last_error = exc
            self.state = ProcessState.CRASHED
            raise
        self.state = ProcessState.READY
        self._breaker.record_start()
        if config.idle_timeout_s:
            self._tg.start_soon(self._idle_watch, proc, config.idle_timeout_s)
        self._tg.start_soon(self._disk_watch, proc, config.data_dir, disk_mb)
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

    def _register(self, session: RpcSession) -> None:
        for method, (handler, params_type) in self._handlers.items():
            session.on_request(method, handler, params_type=params_type)
        # Over budget, a `log` notification is dropped as it arrives: never decoded nor queued
        # (a plainly encoded one not even split into a message: a flood costs ~1 us a line).
        session.on_notification(
            Notifications.LOG.name,
            self._on_log,
            params_type=LogParams,
            admit=self._log_budget.take,
            refuse=self._log_budget.refuse,
        )

    async def _on_log(self, params: LogParams) -> None:
        plugin_log = logging.getLogger(f"plugbox.plugins.{self.name}")
        dropped = self._log_budget.unreported()
        if dropped:
            plugin_log.warning("%d log notifications dropped (over %d/s)", dropped, LINES_PER_S)
        proc = self._proc
        if proc is None:  # a process being replaced: its late records still reach the log
            plugin_log.info("%s", self.scrubber.scrub_text(params.message))
            return
        proc.stderr.record(params.level, params.message, {"logger": params.logger, **params.fields})

    # -- running and dying ----------------------------------------------------------------------

    async def _supervise(self, proc: PluginProcess) -> None:
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
        error = self._on_exit(proc)
        proc.exited.set()
        for listener in self._exit_listeners:
            listener(proc, error)

    def _on_exit(self, proc: PluginProcess) -> PluginError | None:
        """Record why `proc` ended; the error when it died unexpectedly."""
        if self.state is ProcessState.DRAINING or self._proc is not proc:
            return None
        if self.state is ProcessState.READY:
            self._breaker.record_crash()
            self.last_error = self._exit_error(proc, method=None)
            if isinstance(self.last_error.data, dict) and "limit" in self.last_error.data:
                COUNTERS.inc(DENIALS, plugin=self.name, reason=str(self.last_error.data["limit"]))
            self.state = (
                ProcessState.CIRCUIT_OPEN if self._breaker.is_open else ProcessState.CRASHED
            )
            logger.warning("plugin %r crashed: %s", self.name, self.last_error)
            return self.last_error
        if self.state is ProcessState.STARTING:
            self.last_error = self._exit_error(proc, method=Method.INITIALIZE)
            return self.last_error
        return None

    def _exit_error(self, proc: PluginProcess, method: str | None) -> PluginCrashed:
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        tail = proc.stderr.tail_text()
        killed_for = proc.killed_for
        if isinstance(killed_for, LimitExceeded):  # a fresh error per caller, same cause
            data = {**(killed_for.data or {}), "returncode": code, "stderr_tail": tail}
            return LimitExceeded(killed_for.message, plugin=self.name, method=method, data=data)
        limit = proc.process.diagnose(code, tail)
        if limit is not None:
            limit.method = method
            limit.data["stderr_tail"] = tail
            return limit
        return PluginCrashed(
            f"plugin process {describe_exit(code)}" + (f"; stderr tail:\n{tail}" if tail else ""),
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
            await proc.session.request(
                Calls.PING.name, {}, result_type=Calls.PING.result, timeout=LIVENESS_PING_S
            )
        except PluginError:
            logger.warning(
                "plugin %r does not answer ping after a timeout; restarting it", self.name
            )
            await proc.kill()

    async def _disk_watch(self, proc: PluginProcess, data_dir: Path, disk_mb: int) -> None:
        def over(error: LimitExceeded) -> None:
            proc.killed_for = error
            logger.warning("%s", error.message)
            self._tg.start_soon(proc.kill)

        def running() -> bool:
            return self._proc is proc and not proc.exited.is_set()

        await watch_disk(self.name, data_dir, disk_mb, running, over)

    async def _idle_watch(self, proc: PluginProcess, idle_s: float) -> None:
        while self._proc is proc and not proc.exited.is_set():
            remaining = self._last_used + idle_s - time.monotonic()
            if remaining <= 0 and self._in_flight == 0:
                logger.info("plugin %r idle for %g s; stopping it", self.name, idle_s)
                await self.aclose()
                return
            await anyio.sleep(max(remaining, 0.05))

    def _deadline(self, method: str) -> float:
        limits = self.manifest.limits
        return (
            limits.completion_timeout_s
            if method == Method.COMPLETION_RUN
            else limits.call_timeout_s
        )
