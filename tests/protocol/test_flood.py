"""A peer's flood costs the reading loop bounded work per turn, and over-budget notifications are
dropped before they are decoded (issue #14).

These tests count work per loop turn and drops, never time: a ticker task on the same loop records
how much was handled each time it runs, so the cap holds however busy the machine is.
`bench/flood.py` measures the resulting stall with a real plugin.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from sdk.protocol import (
    AsyncioSendStream,
    Message,
    Notification,
    ParseFailure,
    PipeMessageStream,
    RpcSession,
    _framing,
    encode_message,
    memory_message_pair,
    open_pipe_stream,
)
from sdk.protocol._inbound import ORDERED_BATCH
from sdk.protocol._pipe import SLICE_BYTES

pytestmark = pytest.mark.anyio


class Ticker:
    """Runs once per loop turn, recording how far `count()` moved since its last run."""

    def __init__(self, count: Any) -> None:
        self.count = count
        self.steps: list[int] = []
        self.stop = False

    async def run(self) -> None:
        last = self.count()
        while not self.stop:
            await asyncio.sleep(0)  # exactly one loop turn (anyio's checkpoint may take two)
            now = self.count()
            self.steps.append(now - last)
            last = now


@asynccontextmanager
async def peers() -> AsyncIterator[tuple[RpcSession, RpcSession]]:
    left_stream, right_stream = memory_message_pair()
    left, right = RpcSession(left_stream, name="left"), RpcSession(right_stream, name="right")
    with anyio.fail_after(20):
        async with left, right:
            yield left, right


async def test_notifications_refused_by_the_gate_are_dropped_undecoded_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[int] = []
    allowance = iter(range(10))

    def admit() -> bool:
        return next(allowance, None) is not None  # the first 10 pass, as a rate budget would

    async def note(params: dict[str, int]) -> None:
        handled.append(params["i"])

    async def sync(_: Any) -> str:
        return "ok"

    async with peers() as (left, right):
        right.on_notification("log", note, params_type=dict[str, int], admit=admit)
        right.on_request("sync", sync)
        for i in range(1000):
            # Past the budget the params would not even decode: a dropped one is never decoded.
            await left.notify("log", {"i": i} if i < 10 else {"i": "not a number"})
        await left.notify("unknown", {})  # ignored at arrival too
        assert await left.request("sync") == "ok"  # answered after everything before it
    assert handled == list(range(10))
    assert right.notifications_dropped == 990
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Gate:
    """A rate budget's two questions: `take` (admit one) and `refuse` (drop one undecoded)."""

    def __init__(self, allowance: int) -> None:
        self.left = allowance
        self.dropped = 0

    def take(self) -> bool:
        if self.left > 0:
            self.left -= 1
            return True
        self.dropped += 1
        return False

    def refuse(self) -> bool:
        if self.left > 0:
            return False
        self.dropped += 1
        return True


async def test_a_refused_notification_line_is_dropped_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    real_decode = _framing.decode_frame

    def counting_decode(line: bytes) -> Any:
        if line.startswith(b'{"method":"log"'):
            decoded.append(line)
        return real_decode(line)

    monkeypatch.setattr(_framing, "decode_frame", counting_decode)
    handled: list[int] = []
    gate = Gate(10)

    async def note(params: dict[str, int]) -> None:
        handled.append(params["i"])

    async def sync(_: Any) -> str:
        return "ok"

    async with peers() as (left, right):
        right.on_notification(
            "log", note, params_type=dict[str, int], admit=gate.take, refuse=gate.refuse
        )
        right.on_request("sync", sync)
        for i in range(1000):
            await left.notify("log", {"i": i})
        # Not plainly a notification (an "id" member makes it a request): decoded and answered.
        await left._stream.send(b'{"method":"log","params":{},"id":7,"jsonrpc":"2.0"}\n')
        assert await left.request("sync") == "ok"  # answered after everything before it
    assert handled == list(range(10))
    assert right.notifications_dropped == gate.dropped == 990
    assert len(decoded) == 10 + 1  # the admitted ten and the request; 990 never decoded


@asynccontextmanager
async def pipe_stream() -> AsyncIterator[tuple[PipeMessageStream, int]]:
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # reads of up to 256 KiB, as a flood gives
    back_read, back = os.pipe()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(back, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    stream = await open_pipe_stream(os.fdopen(read_fd, "rb", 0), AsyncioSendStream(writer))
    try:
        yield stream, write_fd
    finally:
        await stream.aclose()
        os.close(back_read)


async def test_a_large_read_is_decoded_a_slice_per_loop_turn_in_order() -> None:
    frames = [encode_message(Notification(method="log", params={"i": i})) for i in range(20_000)]
    data = b"".join(frames)
    got: list[Message | ParseFailure] = []
    ticker = Ticker(lambda: len(got))
    with anyio.fail_after(20):
        async with pipe_stream() as (stream, write_fd):

            def write() -> None:
                os.write(write_fd, data)  # 20,000 frames (~500 KiB) in one write, as a flood
                os.close(write_fd)

            writer = threading.Thread(target=write)
            writer.start()
            async with anyio.create_task_group() as group:
                group.start_soon(ticker.run)
                await stream.listen(got.append)  # returns at EOF, after the backlog
                ticker.stop = True
            writer.join()
    assert [bytes(m.params) for m in got if isinstance(m, Notification)] == [
        b'{"i":%d}' % i for i in range(20_000)
    ]
    per_slice = SLICE_BYTES // min(len(f) for f in frames) + 1
    assert max(ticker.steps) <= per_slice  # never one whole 256 KiB read in one turn
    assert sum(1 for s in ticker.steps if s) >= len(data) // SLICE_BYTES


async def test_a_paused_stream_holds_its_backlog_until_resumed() -> None:
    data = b"".join(
        encode_message(Notification(method="log", params={"i": i})) for i in range(10_000)
    )
    got: list[Message | ParseFailure] = []
    first = anyio.Event()

    def listener(message: Message | ParseFailure) -> None:
        got.append(message)
        first.set()

    with anyio.fail_after(20):
        async with pipe_stream() as (stream, write_fd), anyio.create_task_group() as group:
            group.start_soon(stream.listen, listener)
            os.write(write_fd, data[: 200 * 1024])  # one large read: a backlog of slices
            await first.wait()
            stream.pause_reading()
            held = len(got)
            for _ in range(20):
                await asyncio.sleep(0)
            assert len(got) == held  # paused: the backlog waits as the pipe does
            stream.resume_reading()
            os.write(write_fd, data[200 * 1024 :])
            os.close(write_fd)
    assert len([m for m in got if isinstance(m, Notification)]) == 10_000


async def test_the_ordered_runner_yields_to_the_loop_between_batches() -> None:
    handled: list[int] = []
    done = anyio.Event()

    async def note(params: dict[str, int]) -> None:  # never suspends: the costly case
        handled.append(params["i"])
        if len(handled) == 5000:
            done.set()

    data = b"".join(encode_message(Notification(method="n", params={"i": i})) for i in range(5000))
    ticker = Ticker(lambda: len(handled))
    with anyio.fail_after(20):
        async with pipe_stream() as (stream, write_fd), RpcSession(stream) as session:
            session.on_notification("n", note, params_type=dict[str, int])
            async with anyio.create_task_group() as group:
                group.start_soon(ticker.run)
                os.write(write_fd, data)  # a burst: hundreds of messages decoded per turn
                await done.wait()
                ticker.stop = True
            os.close(write_fd)
    assert handled == list(range(5000))
    assert max(ticker.steps) <= ORDERED_BATCH
    assert len([s for s in ticker.steps if s]) >= 5000 // ORDERED_BATCH
