"""Sandbox layer: the runner seam — what to launch, and the running process it gives back.

Contract: `LaunchSpec` says what to run and under which limits and permissions; a launch returns a
`RunningProcess` with the pid, its stdin and stderr byte streams, its stdout as the wire
(`open_wire()`: a message stream decoded as bytes arrive) or as raw bytes (`open_stdout()`),
`wait()`, `kill_group(sig)` (the whole process group, grandchildren included), `cleanup()` and
`diagnose(returncode, stderr_tail)`, which turns a death caused by a sandbox limit into a
`LimitExceeded` naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.abc

from sdk.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    AsyncioReceiveStream,
    AsyncioSendStream,
    LimitExceeded,
    PipeMessageStream,
    open_pipe_stream,
)

from ._spawn import ChildProcess, PipeReaderProtocol, exited

MIB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    open_files: int | None = None
    file_size_mb: int | None = None
    pids: int | None = None
    cpu_quota: float | None = None  # CPUs at once (cgroup cpu controller); None: the default


@dataclass(frozen=True)
class SandboxPermissions:
    network: bool = False
    env_keys: tuple[str, ...] = ()
    writable_paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class LaunchSpec:
    """One plugin process to start. `env` is what the supervisor adds to the allowlist."""

    name: str
    argv: list[str]
    data_dir: Path
    plugin_dir: Path
    venv_dir: Path | None = None
    read_only_paths: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    host_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    limits: SandboxLimits = SandboxLimits()
    permissions: SandboxPermissions = SandboxPermissions()
    pass_fds: tuple[int, ...] = ()  # inherited by the plugin (the zygote's control socket)


Diagnoser = Callable[[int, str], LimitExceeded | None]


class RunningProcess:
    """A launched plugin process (a `ChildProcess` underneath, anyio streams on top)."""

    def __init__(
        self,
        process: ChildProcess,
        stdout: IO[bytes],
        *,
        name: str,
        layers: tuple[str, ...],
        diagnosers: list[Diagnoser],
        cleanups: list[Callable[[], Awaitable[None]]],
        exit_hooks: list[Callable[[], None]] | None = None,
    ) -> None:
        self._process = process
        self.name = name
        self.pid = process.pid
        self.layers = layers
        self.stdin: anyio.abc.ByteSendStream = AsyncioSendStream(process.stdin)
        self._stdout = stdout  # the read end of the plugin's stdout pipe, not yet on the loop
        self._stdout_claimed = False
        self.stderr: anyio.abc.ByteReceiveStream = AsyncioReceiveStream(process.stderr)
        self._diagnosers = diagnosers
        self._cleanups = cleanups
        self._exit_hooks = list(exit_hooks or [])

    async def open_wire(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> PipeMessageStream:
        """The plugin's stdin and stdout as the protocol's message stream (once per process)."""
        self._stdout_claimed = True
        return await open_pipe_stream(self._stdout, self.stdin, max_frame_size=max_frame_size)

    async def open_stdout(self) -> anyio.abc.ByteReceiveStream:
        """The plugin's stdout as raw bytes, for processes that do not speak the protocol."""
        self._stdout_claimed = True
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: PipeReaderProtocol(reader), self._stdout)
        return AsyncioReceiveStream(reader)

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        """The exit status; a signal is negative, also under bwrap (which reports 128 + N).

        The death is noticed by the pid (a pidfd), not by the pipes closing: a descendant that
        keeps stderr open would otherwise hide it. Leftovers (the process group, the cgroup's
        members) are killed then, before the leader is reaped (its pid still names the group).
        """
        if self._process.returncode is None:
            await exited(self.pid)
            self.kill_group(signal.SIGKILL)
            for hook in self._exit_hooks:
                hook()
        code = await self._process.wait()
        if "bwrap" in self.layers and code > 128:
            return -(code - 128)
        return code

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the plugin's whole process group (it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def cleanup(self) -> None:
        if not self._stdout_claimed:
            self._stdout.close()  # once on the loop, the pipe's transport closes it
        for step in self._cleanups:
            await step()

    def diagnose(self, returncode: int, stderr_tail: str = "") -> LimitExceeded | None:
        for diagnoser in self._diagnosers:
            verdict = diagnoser(returncode, stderr_tail)
            if verdict is not None:
                return verdict
        return None
