"""Sandbox layer: the fork off the loop — a child started in a spawner thread, served on the loop.

Contract: `spawn(start)` runs `start` (the start's blocking set-up, then `popen_child`: the fork
of the host, the child's steps before exec, the exec) in a dedicated spawner thread, so the
host's event loop keeps serving while the host is forked and the child prepares; then it
attaches the child's stdin and stderr to the loop and returns a `ChildProcess`: `pid`, `stdin`
(an asyncio `StreamWriter`), `stderr` (a `StreamReader`), `returncode` and `wait()` (the exit
noticed by a pidfd, then a non-blocking reap). A failure in `start` is raised as it raised it.
If the caller is cancelled during a start, the start is still awaited (the fds it was given stay
open until the fork is over), and its child is killed and reaped before the cancellation goes
on: no child outlives a cancelled start.

The spawner threads live as long as the host process: PR_SET_PDEATHSIG (ours, and bwrap's
`--die-with-parent`) fires when the *thread* that forked the child ends, not the process, so a
pool that retires idle threads (anyio's) would kill every plugin it had started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

STDERR_LIMIT = 2**24
_SPAWNERS = 2  # two children may prepare at once; each fork still holds the GIL while it copies
_executor: tuple[int, ThreadPoolExecutor] | None = None


class ChildProcess:
    """A started child: its pid, stdin and stderr on the loop, and its exit status."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.StreamWriter,
        stderr: asyncio.StreamReader,
        stderr_closed: asyncio.Future[None],
    ) -> None:
        # Held: a Popen dropped while running is reaped by the next one (subprocess._active).
        self._popen = popen
        self.pid = popen.pid
        self.stdin = stdin
        self.stderr = stderr
        self._stderr_closed = stderr_closed

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        """The exit status (negative for a signal), reaped once the pidfd says it has exited.

        Like asyncio's `Process.wait`, it returns once the pipes are closed too: stdin at once
        (nobody reads it any more), stderr at its end (all it held is in the reader by then).
        """
        while self._popen.poll() is None:
            await exited(self.pid)
        self.stdin.close()
        await asyncio.shield(self._stderr_closed)
        await asyncio.sleep(0)  # the transports' closing callbacks run
        return self._popen.returncode


def popen_child(
    argv: Sequence[str],
    *,
    stdout: int,
    cwd: Path,
    env: dict[str, str],
    preexec_fn: Callable[[], None],
    pass_fds: tuple[int, ...],
) -> subprocess.Popen[bytes]:
    """Fork and exec `argv` (stdin and stderr piped, `stdout` given); blocking, for `spawn`."""
    return _popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        preexec_fn=preexec_fn,
        pass_fds=pass_fds,
        bufsize=0,  # raw pipes: the loop's transports read and write them
    )


async def spawn(start: Callable[[], subprocess.Popen[bytes]]) -> ChildProcess:
    """Run `start` (a `popen_child`, with any blocking set-up before it) in a spawner thread,
    then attach the child's stdin and stderr to the loop."""
    popen = await _in_spawner(start)
    transports: list[asyncio.BaseTransport] = []
    try:
        child = await _attach(popen, transports)
        await anyio.lowlevel.checkpoint_if_cancelled()  # a cancel now still gets no child
        return child
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _discard(popen, transports)
        raise


def _popen(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """The fork and exec, in a spawner thread (a seam: tests make it fail)."""
    return subprocess.Popen(argv, **options)


async def _in_spawner(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_spawner(), start)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):  # a start that failed left no child
                await _discard(await future, [])
        raise


def _spawner() -> ThreadPoolExecutor:
    """The process's spawner threads (made again in a forked copy of the host, whose are gone)."""
    global _executor
    if _executor is None or _executor[0] != os.getpid():
        _executor = (
            os.getpid(),
            ThreadPoolExecutor(_SPAWNERS, thread_name_prefix="plugbox-spawn"),
        )
    return _executor[1]


async def _attach(
    popen: subprocess.Popen[bytes], transports: list[asyncio.BaseTransport]
) -> ChildProcess:
    assert popen.stdin is not None
    assert popen.stderr is not None
    loop = asyncio.get_running_loop()
    write, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, popen.stdin)
    transports.append(write)
    stdin = asyncio.StreamWriter(write, protocol, None, loop)
    stderr = asyncio.StreamReader(limit=STDERR_LIMIT)
    closed: asyncio.Future[None] = loop.create_future()
    read, _ = await loop.connect_read_pipe(lambda: _ReadProtocol(stderr, closed), popen.stderr)
    transports.append(read)
    return ChildProcess(popen, stdin, stderr, closed)


class PipeReaderProtocol(asyncio.StreamReaderProtocol):
    """A `StreamReader`'s protocol for a pipe: its transport closes at the pipe's end.

    StreamReaderProtocol asks to keep the transport open after EOF (it is written for sockets).
    asyncio's pipe transport closes anyway; uvloop's obeys and never closes it, so on a host
    running uvloop nothing waiting for the pipe's close would return, and the loop could not be
    closed (EBUSY: a handle still open)."""

    def eof_received(self) -> bool:
        super().eof_received()
        return False


class _ReadProtocol(PipeReaderProtocol):
    """A pipe's reader protocol that says when the pipe is closed (its end, or closed by us)."""

    def __init__(self, reader: asyncio.StreamReader, closed: asyncio.Future[None]) -> None:
        super().__init__(reader)
        self._closed_future = closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self._closed_future.done():
            self._closed_future.set_result(None)


async def _discard(popen: subprocess.Popen[bytes], transports: list[asyncio.BaseTransport]) -> None:
    """Kill a child nobody will own (its session first: it ran setsid before its exec), reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.kill()  # the leader itself, should it have died before its setsid
    for transport in transports:
        transport.close()
    for pipe in (popen.stdin, popen.stderr):
        if pipe is not None and not any(t.get_extra_info("pipe") is pipe for t in transports):
            pipe.close()
    while popen.poll() is None:
        await exited(popen.pid)


async def exited(pid: int) -> None:
    """Return when process `pid` has exited (its pidfd turns readable; it is not reaped here)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone and reaped
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
