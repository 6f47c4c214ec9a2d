"""Supervisor layer, for tests: `FakeRunner`, an in-memory runner (public as `host.testing`).

Contract: `async with FakeRunner({"name": FakePlugin(...)}) as runner:` then
`PluginHost(config, runner=runner)`; every plugin "process" is a task in the runner's task group
speaking the real wire protocol over in-memory streams, scripted by its `FakePlugin`: answer,
hang on or crash on a method, ignore `shutdown`, stdin EOF or SIGTERM. Its pid is fake and it
records the signals it was sent, so crash, restart, breaker, timeout and shutdown-ladder logic
run in milliseconds without a process. Real-process tests stay beside these: this replaces the
sandbox, never the supervisor.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from sdk.protocol import (
    PROTOCOL_VERSION,
    Calls,
    InitializeParams,
    InitializeResult,
    LimitExceeded,
    MessageStream,
    PingParams,
    PingResult,
    RpcSession,
    ShutdownParams,
    memory_message_pair,
)

from .sandbox import LaunchSpec, SandboxPolicy

_PIDS = itertools.count(4_000_000)  # above any real pid_max default: never a live process


@dataclass
class FakePlugin:
    """How one fake plugin behaves. By default it starts, answers and stops politely."""

    answers: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)  # method -> result
    crash_on: str | None = None  # the process exits with `exit_code` when this method arrives
    exit_code: int = 1
    hang_on: str | None = None  # this method is never answered
    ignore_shutdown: bool = False  # `shutdown` is answered but the process stays
    ignore_eof: bool = False  # closing its stdin does not end it
    ignore_sigterm: bool = False  # only SIGKILL ends it
    protocol_version: str = PROTOCOL_VERSION
    stderr: bytes = b""  # written to its stderr at start (what a crash report quotes)


class _Stderr(anyio.abc.ByteReceiveStream):
    def __init__(self, data: bytes, exited: anyio.Event) -> None:
        self._data, self._exited = data, exited

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._data:
            chunk, self._data = self._data[:max_bytes], self._data[max_bytes:]
            return chunk
        await self._exited.wait()
        raise anyio.EndOfStream

    async def aclose(self) -> None:
        self._data = b""


class FakeProcess:
    """One in-memory plugin "process": what the supervisor needs of a launched process."""

    def __init__(self, name: str, behaviour: FakePlugin) -> None:
        self.name, self.behaviour = name, behaviour
        self.pid = next(_PIDS)
        self.layers: tuple[str, ...] = ("fake",)
        self.signals: list[int] = []  # every signal sent to its process group, in order
        self.calls: list[str] = []  # every method it received, in order
        self.returncode: int | None = None
        self._exited = anyio.Event()
        self._scope = anyio.CancelScope()
        self._host_end, self._plugin_end = memory_message_pair()
        self.stderr: anyio.abc.ByteReceiveStream = _Stderr(behaviour.stderr, self._exited)

    async def open_wire(self, max_frame_size: int = 0) -> MessageStream:
        return self._host_end

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not self.behaviour.ignore_sigterm):
            self.exit(-sig)

    def exit(self, code: int) -> None:
        """End the process with `code` (a negative code is death by that signal)."""
        if self.returncode is None:
            self.returncode = code
            self._scope.cancel()

    async def cleanup(self) -> None:
        """Close the host's end of the wire, as a reaped process's pipes are closed."""
        with anyio.CancelScope(shield=True):
            await self._host_end.aclose()

    def diagnose(self, returncode: int, stderr_tail: str = "") -> LimitExceeded | None:
        return None

    async def serve(self) -> None:
        """Run the plugin side until the process ends; then close its end of the wire."""
        session = RpcSession(self._plugin_end, name="host")
        self._route(session)
        with self._scope:
            await session.run()  # returns when the host closes the wire (stdin EOF)
            if self.behaviour.ignore_eof:
                await anyio.sleep_forever()
            self.exit(0)
        self.exit(0)
        with anyio.CancelScope(shield=True):
            await self._plugin_end.aclose()
        self._exited.set()

    def _route(self, session: RpcSession) -> None:
        answers: dict[str, Callable[[Any], Any]] = {
            Calls.INITIALIZE.name: self._initialize,
            Calls.PING.name: lambda _: PingResult(pid=self.pid),
            Calls.SHUTDOWN.name: self._shutdown,
            **self.behaviour.answers,
        }
        types = {
            Calls.INITIALIZE.name: InitializeParams,
            Calls.PING.name: PingParams,
            Calls.SHUTDOWN.name: ShutdownParams,
        }
        for method in {
            *answers,
            *(m for m in (self.behaviour.crash_on, self.behaviour.hang_on) if m),
        }:
            handler = self._handler(method, answers.get(method))
            session.on_request(method, handler, params_type=types.get(method, Any))

    def _handler(self, method: str, answer: Callable[[Any], Any] | None) -> Any:
        async def handle(params: Any) -> Any:
            self.calls.append(method)
            if method == self.behaviour.crash_on:
                self.exit(self.behaviour.exit_code)
                await anyio.sleep_forever()
            if method == self.behaviour.hang_on or answer is None:
                await anyio.sleep_forever()
            assert answer is not None
            return answer(params)

        return handle

    def _initialize(self, _: InitializeParams) -> InitializeResult:
        return InitializeResult(
            protocol_version=self.behaviour.protocol_version,
            sdk_version="fake",
            package_name=self.name,
            package_version="0",
            spec_hash="fake",
            pid=self.pid,
        )

    def _shutdown(self, _: ShutdownParams) -> None:
        if not self.behaviour.ignore_shutdown:
            self.exit(0)


class FakeRunner:
    """An in-memory `Runner`: plugins by name get their `FakePlugin`, others `default`."""

    def __init__(
        self, plugins: Mapping[str, FakePlugin] | None = None, default: FakePlugin | None = None
    ) -> None:
        self.plugins = dict(plugins or {})
        self.default = default or FakePlugin()
        self.launched: list[FakeProcess] = []
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> FakeRunner:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self.launched:
            process.exit(-signal.SIGKILL)
        assert self._group is not None
        await self._group.__aexit__(exc_type, exc, tb)

    async def __call__(self, spec: LaunchSpec, policy: SandboxPolicy) -> FakeProcess:
        if self._group is None:
            raise RuntimeError("FakeRunner is used outside `async with`")
        process = FakeProcess(spec.name, self.plugins.get(spec.name, self.default))
        self.launched.append(process)
        self._group.start_soon(process.serve)
        return process

    def of(self, name: str) -> list[FakeProcess]:
        """Every process launched for plugin `name`, oldest first."""
        return [process for process in self.launched if process.name == name]
