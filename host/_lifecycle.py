"""Supervisor layer: one plugin process's lifecycle — start, supervise, classify its end, stop.

Contract: `ProcessLifecycle` holds the state machine (`ProcessState`) that `PluginHandle`
(`_supervisor`) serves calls on. `start()` returns the ready process, starting one lazily (the
disk quota checked, spawn under the sandbox or from the zygote, session wired, `initialize` under
the start-up deadline) after the breaker's jittered backoff; repeated crashes open the circuit
(`CircuitOpen`, fast). A process that ends is reaped with its group, its late replies and log
lines drained; an unexpected end is recorded as `PluginCrashed` (or `LimitExceeded` when the
sandbox says a limit killed it) carrying the exit status and stderr tail, and every `on_exit`
listener hears of it. `aclose()` runs the shutdown ladder — `shutdown`, close stdin, SIGTERM,
SIGKILL — bounded and shielded. Idle and disk watches run in the task group the owner passes in.
The steps on one process (its launch spec, the handshake, the ladder itself) are `_process`'s.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import anyio
import anyio.abc

from sdk.protocol import (
    CallMethod,
    CircuitOpen,
    InitializeResult,
    LimitExceeded,
    LogParams,
    Method,
    Notifications,
    PluginCrashed,
    PluginError,
    RpcSession,
    SecretScrubber,
)

from ._breaker import BACKOFF_BASE_S, FORK_BACKOFF_BASE_S, CrashBreaker
from ._counters import COUNTERS, DENIALS
from ._disk import check_disk, watch_disk
from ._manifest import Manifest
from ._process import (
    STDERR_DRAIN_S,
    LaunchConfig,
    PluginProcess,
    describe_exit,
    handshake,
    launch_spec,
)
from ._runner import Runner
from ._stderr import LINES_PER_S, Budget, StderrPump
from ._zygote import Zygote
from .sandbox import launch as sandbox_launch

P = TypeVar("P")
R = TypeVar("R")
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


class LifecycleOptions(TypedDict, total=False):
    """The keyword options of `ProcessLifecycle`, passed on unchanged by `PluginHandle`."""

    breaker: CrashBreaker | None
    scrubber: SecretScrubber | None
    runner: Runner
    zygote: bool


class ProcessLifecycle:
    """One plugin's process: lazily started, supervised, restarted, stopped."""

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

    # -- public API -----------------------------------------------------------------------------

    @property
    def process(self) -> PluginProcess | None:
        """The ready process, if there is one (what a live session binds to)."""
        return self._proc if self.state is ProcessState.READY else None

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
