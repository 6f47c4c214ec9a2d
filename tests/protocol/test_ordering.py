"""Session ordering and backpressure, and the pipe stream that decodes in the data callback.

Both peers run in one event loop: over in-memory streams for the session's rules, over a real
`os.pipe()` pair for `PipeMessageStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest

from sdk.protocol import (
    AsyncioSendStream,
    FrameTooLarge,
    Message,
    Notification,
    ParseError,
    ParseFailure,
    PipeMessageStream,
    Request,
    RpcSession,
    encode_message,
    memory_message_pair,
    open_pipe_stream,
)
from sdk.protocol._inbound import ORDERED_HIGH_WATER

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def peers() -> AsyncIterator[tuple[RpcSession, RpcSession]]:
    left_stream, right_stream = memory_message_pair()
    left, right = RpcSession(left_stream, name="left"), RpcSession(right_stream, name="right")
    with anyio.fail_after(10):
        async with left, right:
            yield left, right


async def test_a_request_behind_a_notification_starts_only_after_it() -> None:
    seen: list[str] = []
    release = anyio.Event()

    async def slow_note(_: Any) -> None:
        seen.append("note started")
        await release.wait()
        seen.append("note done")

    async def finish(_: Any) -> str:
        seen.append("finish")
        return "ok"

    async with peers() as (left, right):
        right.on_notification("events", slow_note)
        right.on_request("finish", finish)
        await left.notify("events", {})
        async with anyio.create_task_group() as group:
            group.start_soon(left.request, "finish", {})
            while not seen:
                await anyio.lowlevel.checkpoint()
            release.set()
    assert seen == ["note started", "note done", "finish"]


async def test_a_notification_handler_can_call_back_into_its_peer() -> None:
    answered = anyio.Event()

    async def note_that_asks(_: Any) -> None:
        assert await right.request("echo", {"x": 1}) == {"x": 1}
        answered.set()

    async def echo(params: Any) -> Any:
        return params

    async with peers() as (left, right):
        left.on_request("echo", echo)
        right.on_notification("events", note_that_asks)
        await left.notify("events", {})
        await answered.wait()  # the answer was read while the notification still ran


async def test_a_cancel_drops_a_request_still_queued_behind_a_notification() -> None:
    release = anyio.Event()
    ran: list[str] = []

    async def slow_note(_: Any) -> None:
        await release.wait()

    async def work(_: Any) -> None:
        ran.append("work")

    async with peers() as (left, right):
        right.on_notification("events", slow_note)
        right.on_request("work", work)
        right.on_request("ping", lambda _: anyio.lowlevel.checkpoint())
        await left.notify("events", {})
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.05):
                await left.request("work", {})  # cancelled by the caller: `$/cancel` is sent
        release.set()
        await left.request("ping", {})  # queued after the cancel: by now it was handled
    assert ran == []


async def test_a_blocked_notification_handler_pauses_reading_then_resumes() -> None:
    release = anyio.Event()
    handled: list[int] = []

    async def slow_note(params: Any) -> None:
        await release.wait()
        handled.append(params["n"])

    async with peers() as (left, right):
        right.on_notification("events", slow_note)
        stream = right._stream
        for n in range(ORDERED_HIGH_WATER + 10):
            await left.notify("events", {"n": n})
        while not right._paused:
            await anyio.lowlevel.checkpoint()
        assert stream._resumed is not None  # type: ignore[attr-defined]  # the reader waits
        release.set()
        while len(handled) < ORDERED_HIGH_WATER + 10:
            await anyio.lowlevel.checkpoint()
        assert not right._paused
    assert handled == list(range(ORDERED_HIGH_WATER + 10))


async def test_a_handler_awaiting_its_peer_under_backpressure_still_gets_the_answer() -> None:
    answers: list[Any] = []

    async def echo(params: Any) -> Any:
        return params

    async def note(params: Any) -> None:
        if params["n"] == 0:
            while not right._paused and len(right._ordered) < ORDERED_HIGH_WATER + 5:
                await anyio.lowlevel.checkpoint()  # let the queue fill behind this handler
            answers.append(await right.request("echo", {"x": 1}))

    async with peers() as (left, right):
        left.on_request("echo", echo)
        right.on_notification("events", note)
        for n in range(ORDERED_HIGH_WATER + 20):
            await left.notify("events", {"n": n})
        while not answers:
            await anyio.lowlevel.checkpoint()
    assert answers == [{"x": 1}]


@asynccontextmanager
async def pipe_stream() -> AsyncIterator[tuple[PipeMessageStream, int]]:
    """A `PipeMessageStream` reading a real pipe; yields it and the pipe's write fd."""
    read_fd, write_fd = os.pipe()
    back_read, back = os.pipe()  # the stream's send side goes nowhere in these tests
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(back, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", 0), AsyncioSendStream(writer), max_frame_size=64
    )
    try:
        yield stream, write_fd
    finally:
        await stream.aclose()
        os.close(back_read)


async def test_the_pipe_stream_delivers_in_order_across_splits_and_ends_at_eof() -> None:
    frames = b"".join(encode_message(Notification(method="n", params={"i": i})) for i in range(50))
    got: list[Message | ParseFailure] = []
    with anyio.fail_after(10):
        async with pipe_stream() as (stream, write_fd):
            os.write(write_fd, frames[:100])  # two frames and a part, before anyone listens
            while not stream._reader.early:
                await anyio.lowlevel.checkpoint()  # decoded and kept, to be handed over first
            async with anyio.create_task_group() as group:
                group.start_soon(stream.listen, got.append)
                for start in range(100, len(frames), 13):
                    os.write(write_fd, frames[start : start + 13])
                    await anyio.lowlevel.checkpoint()
                os.write(write_fd, b"not json\n" + b"x" * 100 + b"\n")
                os.close(write_fd)  # EOF: listen returns and the group ends
    notes = [m for m in got if isinstance(m, Notification)]
    assert [bytes(m.params) for m in notes] == [b'{"i":%d}' % i for i in range(50)]
    failures = [m for m in got if isinstance(m, ParseFailure)]
    assert [type(f.error) for f in failures] == [ParseError, FrameTooLarge]  # not JSON; > 64 B
    assert not any(isinstance(m, Request) for m in got)


async def test_held_frames_are_written_together_in_order_and_a_lone_frame_at_once() -> None:
    read_fd, write_fd = os.pipe()
    back_read, back = os.pipe()
    os.set_blocking(back_read, False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(back, "wb", 0)
    )
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", 0),
        AsyncioSendStream(asyncio.StreamWriter(transport, protocol, None, loop)),
    )

    def written() -> bytes:
        try:
            return os.read(back_read, 1 << 16)
        except BlockingIOError:
            return b""

    with anyio.fail_after(10):
        await stream.send(b"lone\n")
        assert written() == b"lone\n"  # no hold: on the pipe before send returns
        await stream.send(b"a\n", hold=True)
        await stream.send(b"b\n", hold=True)
        assert written() == b""  # held for the rest of this loop turn
        await stream.send(b"c\n")  # an unheld frame takes what is held with it, in order
        assert written() == b"a\nb\nc\n"
        await stream.send(b"d\n", hold=True)
        await stream.send(b"e\n", hold=True)
        await anyio.lowlevel.checkpoint()  # one loop turn: what was held is written
        assert written() == b"d\ne\n"
    await stream.aclose()
    os.close(write_fd)
    os.close(back_read)


async def test_held_frames_stay_behind_frames_queued_while_the_pipe_is_full() -> None:
    read_fd, write_fd = os.pipe()
    back_read, back = os.pipe()
    os.set_blocking(back_read, False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(back, "wb", 0)
    )
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", 0),
        AsyncioSendStream(asyncio.StreamWriter(transport, protocol, None, loop)),
    )
    big = b"a" * 300_000 + b"\n"  # more than the pipe holds: its sender waits for the reader
    received = bytearray()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(stream.send, big)
            await anyio.lowlevel.checkpoint()
            group.start_soon(stream.send, b"b\n")  # queued behind the waiting sender
            await anyio.lowlevel.checkpoint()
            group.start_soon(partial(stream.send, b"c\n", hold=True))
            while not received.endswith(b"c\n"):
                with contextlib.suppress(BlockingIOError):
                    received += os.read(back_read, 1 << 16)
                await anyio.lowlevel.checkpoint()
    assert bytes(received) == big + b"b\nc\n"
    await stream.aclose()
    os.close(write_fd)
    os.close(back_read)
