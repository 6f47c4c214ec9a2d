"""Supervisor layer: a plugin's zygote — one sandbox that imports once and forks each worker.

Contract: `Zygote(name, runner, task_group)` is itself a `Runner`. Its first call launches the
sandbox through `runner` with a control socket (`sdk/_zygote.py` says what the plugin side does);
every call then asks that sandbox for a fresh worker and returns it as a `LaunchedProcess`: its
own wire and stderr pipes, its exit status (reported by the zygote, which reaps it), signals to its
process group, and the sandbox's verdict on its death. So a crash costs a fork, not a sandbox
start and the imports: the supervisor's restart, backoff and breaker apply unchanged. A worker
killed by a sandbox limit retires the sandbox (its cgroup's counters describe that death), and a
dead zygote is relaunched on the next call. `fork()` gives one more worker from a running zygote
(a fresh process for one completion run). `aclose()` ends the sandbox, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable
from dataclasses import replace
from typing import IO

import anyio
import anyio.abc

from sdk.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    AsyncioReceiveStream,
    AsyncioSendStream,
    HandshakeError,
    LimitExceeded,
    MessageStream,
    Method,
    PluginCrashed,
    SecretScrubber,
    open_pipe_stream,
)

from ._process import describe_exit
from ._runner import LaunchedProcess, Runner
from ._stderr import StderrPump
from .sandbox import LaunchSpec, PipeReaderProtocol, SandboxPolicy

ZYGOTE_FD_ENV = "PLUGBOX_ZYGOTE_FD"
DRAIN_S = 1.0  # after the zygote exits, time to read its last reports and stderr lines
STOP_S = 2.0  # after the control socket closes, time for the zygote to exit before SIGKILL
_MESSAGE = 64
logger = logging.getLogger("plugbox.supervisor")


class Zygote:
    """One plugin's zygote sandbox, as a runner of worker processes."""

    def __init__(
        self,
        name: str,
        runner: Runner,
        task_group: anyio.abc.TaskGroup,
        scrubber: SecretScrubber | None = None,
        *,
        spawn_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._scrubber = scrubber
        self.spawn_timeout_s = spawn_timeout_s
        self._pump: StderrPump | None = None
        self._exit_code: int | None = None
        self._runner = runner
        self._tg = task_group
        self._sandbox: LaunchedProcess | None = None
        self._ctl: socket.socket | None = None
        self._replies: asyncio.Queue[str] | None = None
        self._workers: dict[int, Worker] = {}
        self._early_exits: dict[int, int] = {}
        self._spawn_lock = anyio.Lock()  # reported before its `Worker` was registered
        self._ended: anyio.Event | None = None
        self.launches = 0

    @property
    def alive(self) -> bool:
        return self._ended is not None and not self._ended.is_set()

    def _spawn_error(self, reply: str) -> HandshakeError:
        if reply:
            what = f"its zygote answered {reply!r} to a fork"
        elif self.alive:
            what = f"no handshake within {self.spawn_timeout_s:g} s (the zygote did not fork)"
        else:
            what = f"{describe_exit(self._exit_code)} before its zygote forked a worker"
        tail = self._pump.tail_text() if self._pump is not None else ""
        return HandshakeError(
            what + (f"; stderr tail:\n{tail}" if tail else ""),
            plugin=self.name,
            method=Method.INITIALIZE,
            data={"stderr_tail": tail},
        )

    async def __call__(self, spec: LaunchSpec, policy: SandboxPolicy) -> LaunchedProcess:
        if not self.alive:
            await self._launch(spec, policy)
        try:
            return await self._spawn()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """End the sandbox: close the control socket (the zygote exits), then SIGKILL, bounded."""
        with anyio.CancelScope(shield=True):
            sandbox, ended = self._sandbox, self._ended
            if sandbox is None or ended is None:
                return
            self._close_ctl()
            with anyio.move_on_after(STOP_S):
                await ended.wait()
            if not ended.is_set():
                sandbox.kill_group(signal.SIGKILL)
                with anyio.move_on_after(STOP_S * 2):
                    await ended.wait()

    def signal_worker(self, pid: int, sig: int) -> None:
        if self._workers.get(pid) is None:
            return
        ctl = self._ctl
        try:
            if ctl is None:
                raise OSError("no control socket")
            ctl.send(f"kill {int(pid)} {int(sig)}".encode("ascii"))
        except OSError:
            if self._sandbox is not None:  # no zygote to ask: the whole sandbox goes
                self._sandbox.kill_group(sig)

    # -- the sandbox ----------------------------------------------------------------------------

    async def _launch(self, spec: LaunchSpec, policy: SandboxPolicy) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            theirs.set_inheritable(True)
            zygote_spec = replace(
                spec,
                env={**spec.env, ZYGOTE_FD_ENV: str(theirs.fileno())},
                pass_fds=(*spec.pass_fds, theirs.fileno()),
            )
            sandbox = await self._runner(zygote_spec, policy)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.launches += 1
        self._sandbox, self._ctl = sandbox, ours
        self._replies = asyncio.Queue()
        self._ended = ended = anyio.Event()
        self._tg.start_soon(self._watch, sandbox, ours, self._replies, ended)

    async def _watch(
        self,
        sandbox: LaunchedProcess,
        ctl: socket.socket,
        replies: asyncio.Queue[str],
        ended: anyio.Event,
    ) -> None:
        """Read the zygote's reports and its stderr until it exits; then reap the sandbox."""
        pump = StderrPump(self.name, self._scrubber)
        self._pump = pump
        drained = (anyio.Event(), anyio.Event())
        async with anyio.create_task_group() as readers:
            readers.start_soon(_until_done, pump.run(sandbox.stderr), drained[0])
            readers.start_soon(_until_done, self._read_reports(ctl, replies), drained[1])
            code = await sandbox.wait()  # the death is seen by its pidfd, not by a closed pipe
            sandbox.kill_group(signal.SIGKILL)
            with anyio.move_on_after(DRAIN_S):  # late reports and log lines are still read
                for event in drained:
                    await event.wait()
            readers.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await sandbox.cleanup()
        self._close_ctl(ctl)
        ctl.close()
        self._exit_code = code
        ended.set()
        for worker in list(self._workers.values()):  # a worker dies with its zygote
            worker.exit(-signal.SIGKILL if code >= 0 else code)
        self._workers.clear()
        self._early_exits.clear()
        await replies.put("")
        logger.debug("zygote of %r ended (%s)", self.name, code)

    async def _read_reports(self, ctl: socket.socket, replies: asyncio.Queue[str]) -> None:
        while True:
            await anyio.wait_readable(ctl)
            try:
                data = ctl.recv(_MESSAGE)
            except BlockingIOError:
                continue
            if not data:
                return
            kind, _, rest = data.decode("ascii", "replace").partition(" ")
            if kind == "exit":
                pid, _, code = rest.partition(" ")
                worker = self._workers.pop(int(pid), None)
                if worker is not None:
                    worker.exit(int(code))
                else:
                    self._early_exits[int(pid)] = int(code)
            else:
                await replies.put(data.decode("ascii", "replace"))

    def _close_ctl(self, ctl: socket.socket | None = None) -> None:
        ctl = ctl or self._ctl
        if ctl is not None and ctl is self._ctl:
            self._ctl = None
        if ctl is not None:
            with contextlib.suppress(OSError):
                ctl.shutdown(socket.SHUT_RDWR)  # the zygote reads EOF; our reader sees it too

    # -- workers --------------------------------------------------------------------------------

    async def fork(self) -> Worker:
        """One more worker from the running zygote (a fresh process for one completion run)."""
        if not self.alive:
            raise PluginCrashed("the plugin's zygote is not running", plugin=self.name)
        return await self._spawn()

    async def _spawn(self) -> Worker:
        async with self._spawn_lock:  # one fork and its answer at a time: replies stay paired
            return await self._spawn_locked()

    async def _spawn_locked(self) -> Worker:
        ctl, replies, sandbox = self._ctl, self._replies, self._sandbox
        if ctl is None or replies is None or sandbox is None:
            raise self._spawn_error("")
        wire_in_r, wire_in_w = os.pipe()
        wire_out_r, wire_out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            socket.send_fds(ctl, [b"spawn"], [wire_in_r, wire_out_w, err_w])
        except OSError as exc:
            for fd in (wire_in_r, wire_in_w, wire_out_r, wire_out_w, err_r, err_w):
                os.close(fd)
            raise PluginCrashed(f"zygote is gone ({exc})", plugin=self.name) from exc
        finally:
            with contextlib.suppress(OSError):
                for fd in (wire_in_r, wire_out_w, err_w):  # the worker holds its copies
                    os.close(fd)
        reply = ""
        with anyio.move_on_after(self.spawn_timeout_s):  # the first one waits for the imports
            reply = await replies.get()
        kind, _, pid = reply.partition(" ")
        if kind != "pid":
            for fd in (wire_in_w, wire_out_r, err_r):
                os.close(fd)
            raise self._spawn_error(reply)
        worker = await Worker.open(self, sandbox, int(pid), wire_in_w, wire_out_r, err_r)
        early = self._early_exits.pop(worker.worker_pid, None)
        if early is not None or not self.alive:
            worker.exit(early if early is not None else -signal.SIGKILL)
        else:
            self._workers[worker.worker_pid] = worker
        return worker


class Worker:
    """One worker forked by the zygote, as the supervisor sees a process (`LaunchedProcess`)."""

    def __init__(
        self,
        zygote: Zygote,
        sandbox: LaunchedProcess,
        worker_pid: int,
        stdin: AsyncioSendStream,
        stdout: IO[bytes],
        stderr: AsyncioReceiveStream,
    ) -> None:
        self._zygote = zygote
        self._sandbox = sandbox
        self.worker_pid = worker_pid  # in the sandbox's pid namespace
        self._stdin = stdin
        self._stdout: IO[bytes] | None = stdout
        self.stderr: anyio.abc.ByteReceiveStream = stderr
        self._exited = anyio.Event()
        self._code: int | None = None

    @classmethod
    async def open(
        cls, zygote: Zygote, sandbox: LaunchedProcess, pid: int, stdin: int, stdout: int, err: int
    ) -> Worker:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(stdin, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        reader = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: PipeReaderProtocol(reader), os.fdopen(err, "rb", 0))
        return cls(
            zygote,
            sandbox,
            pid,
            AsyncioSendStream(writer),
            os.fdopen(stdout, "rb", 0),
            AsyncioReceiveStream(reader),
        )

    @property
    def pid(self) -> int:
        return self._sandbox.pid  # the sandbox's root: `plugin_pid` walks down to the worker

    @property
    def layers(self) -> tuple[str, ...]:
        return self._sandbox.layers

    async def open_wire(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> MessageStream:
        stdout, self._stdout = self._stdout, None
        assert stdout is not None, "the wire is opened once per worker"
        return await open_pipe_stream(stdout, self._stdin, max_frame_size=max_frame_size)

    def exit(self, code: int) -> None:
        if self._code is None:
            self._code = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._code is not None
        return self._code

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        if not self._exited.is_set():
            self._zygote.signal_worker(self.worker_pid, sig)

    async def cleanup(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        with contextlib.suppress(Exception):
            await self._stdin.aclose()
        if self._code is not None and self._sandbox.diagnose(self._code, "") is not None:
            # A limit killed it: the sandbox's counters now describe this death, so the next
            # start gets a fresh sandbox (and a fresh cgroup) rather than a fork.
            await self._zygote.aclose()

    def diagnose(self, returncode: int, stderr_tail: str = "") -> LimitExceeded | None:
        return self._sandbox.diagnose(returncode, stderr_tail)


async def _until_done(work: Awaitable[None], done: anyio.Event) -> None:
    try:
        with contextlib.suppress(OSError):
            await work
    finally:
        done.set()
