"""Supervisor layer: the runner seam — what starts a plugin process, as the supervisor sees it.

Contract: a `Runner` is `async (LaunchSpec, SandboxPolicy) -> LaunchedProcess`. The default is the
sandbox's `launch` (a real, sandboxed OS process); `host.testing.FakeRunner` is an in-memory one,
so lifecycle, breaker and shutdown logic can be tested without processes. `LaunchedProcess` is the
part of `sandbox.RunningProcess` the supervisor uses: the wire, stderr, exit status, signals to
the process group, clean-up, and the sandbox's verdict on a death.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio.abc

from sdk.protocol import DEFAULT_MAX_FRAME_SIZE, LimitExceeded, MessageStream

from .sandbox import LaunchSpec, SandboxPolicy


class LaunchedProcess(Protocol):
    """A started plugin process (real or in-memory)."""

    @property
    def pid(self) -> int: ...
    @property
    def layers(self) -> tuple[str, ...]: ...
    @property
    def stderr(self) -> anyio.abc.ByteReceiveStream: ...
    async def open_wire(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> MessageStream: ...
    async def wait(self) -> int: ...
    def kill_group(self, sig: int = ...) -> None: ...
    async def cleanup(self) -> None: ...
    def diagnose(self, returncode: int, stderr_tail: str = "") -> LimitExceeded | None: ...


Runner = Callable[[LaunchSpec, SandboxPolicy], Awaitable[LaunchedProcess]]
