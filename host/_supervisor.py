"""Supervisor layer: one plugin process behind a `PluginHandle` — its calls, state and figures.

Contract: `call()` starts the process lazily (through `_lifecycle`: spawn under the sandbox,
`initialize` under the start-up deadline), applies the manifest's deadline, and raises the wire
error tree naming the plugin and the method. A crash fails pending calls with `PluginCrashed` (or
`LimitExceeded` when the sandbox says a limit killed it) carrying the exit status and stderr
tail; the next call restarts after a jittered backoff, and repeated crashes open a circuit
(`CircuitOpen`). A call that times out is followed by a `ping`: a plugin that cannot answer it is
restarted. `status()` gives the live figures the API and `/metrics` show. The state machine
(start, supervise, the shutdown ladder in `aclose()`) is `_lifecycle`'s.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, Unpack

import anyio
import anyio.abc

from sdk.protocol import (
    CallMethod,
    Calls,
    ConnectionClosed,
    Method,
    NotifyMethod,
    PluginCrashed,
    PluginError,
    PluginTimeout,
)

from ._fresh import call_in_fresh_fork
from ._lifecycle import LifecycleOptions, ProcessLifecycle, ProcessState
from ._manifest import Manifest
from ._process import EXIT_GRACE_S, STDERR_DRAIN_S, LaunchConfig, PluginProcess
from ._procinfo import plugin_pid, rss_bytes
from ._stats import CallStats

P = TypeVar("P")
R = TypeVar("R")
LIVENESS_PING_S = 2.0  # after a timeout: a plugin that cannot answer `ping` is restarted
RECENT_ERRORS = 10  # failed calls kept per plugin (with the remote traceback) for the dashboard
logger = logging.getLogger("plugbox.supervisor")


class PluginHandle(ProcessLifecycle):
    """The host's handle on one plugin: lazily started, restarted, stopped."""

    def __init__(
        self,
        manifest: Manifest,
        config: LaunchConfig | Callable[[], Awaitable[LaunchConfig]],
        task_group: anyio.abc.TaskGroup,
        **options: Unpack[LifecycleOptions],
    ) -> None:
        super().__init__(manifest, config, task_group, **options)
        self.stats = CallStats()
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

    # -- a failed call ----------------------------------------------------------------------------

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

    def _deadline(self, method: str) -> float:
        limits = self.manifest.limits
        return (
            limits.completion_timeout_s
            if method == Method.COMPLETION_RUN
            else limits.call_timeout_s
        )
