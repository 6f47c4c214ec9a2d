"""Inline routes (`on_request_inline`): a plain function answered in the loop's data callback.

Both peers run in one event loop over real `os.pipe()` pairs (the pipe stream is what can write
without waiting), and once over in-memory streams, where the same route falls back to a task.
The end-to-end case, a real child process on either loop, is in test_loops.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from sdk.protocol import (
    AsyncioSendStream,
    InternalError,
    InvalidParams,
    PipeMessageStream,
    RemoteError,
    Request,
    RpcSession,
    encode_message,
    memory_message_pair,
    open_pipe_stream,
)
from sdk.protocol._pipe import HOLD_FLUSH_FRAMES
from sdk.protocol._streams import DRAIN_ABOVE

pytestmark = pytest.mark.anyio


class Add(msgspec.Struct):
    a: int
    b: int


async def _writer(fd: int) -> AsyncioSendStream:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", 0)
    )
    return AsyncioSendStream(asyncio.StreamWriter(transport, protocol, None, loop))


async def _pipe_stream(read_fd: int, write_fd: int) -> PipeMessageStream:
    return await open_pipe_stream(os.fdopen(read_fd, "rb", 0), await _writer(write_fd))


@asynccontextmanager
async def pipe_peers() -> AsyncIterator[tuple[RpcSession, RpcSession]]:
    """A host and a plugin session joined by two real pipes, on this loop."""
    to_plugin_r, to_plugin_w = os.pipe()
    to_host_r, to_host_w = os.pipe()
    host = RpcSession(await _pipe_stream(to_host_r, to_plugin_w), name="plugin")
    plugin = RpcSession(await _pipe_stream(to_plugin_r, to_host_w), name="host")
    with anyio.fail_after(10):
        async with plugin, host:
            yield host, plugin


async def test_an_inline_function_answers_in_the_data_callback_without_a_task() -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    def add(params: Add) -> int:
        tasks.append(asyncio.current_task())  # None: called from the loop's data callback
        return params.a + params.b

    async with pipe_peers() as (host, plugin):
        plugin.on_request_inline("add", add, params_type=Add)
        sums = [await host.request("add", {"a": n, "b": 1}) for n in range(50)]
        parallel: dict[int, int] = {}

        async def call(n: int) -> None:
            parallel[n] = await host.request("add", {"a": n, "b": n})

        async with anyio.create_task_group() as group:
            for n in range(300):
                group.start_soon(call, n)
        assert not plugin._handlers  # no handler task was ever left behind
    assert sums == [n + 1 for n in range(50)]
    assert parallel == {n: 2 * n for n in range(300)}
    assert len(tasks) == 350
    assert set(tasks) == {None}


async def test_the_replies_to_one_read_go_out_a_few_frames_per_write() -> None:
    """50 requests already in the pipe when the plugin reads: one read, and the replies written
    HOLD_FLUSH_FRAMES at a time (the host starts on the first while the rest are made)."""
    to_plugin_r, to_plugin_w = os.pipe()
    to_host_r, to_host_w = os.pipe()
    stream = await _pipe_stream(to_plugin_r, to_host_w)
    plugin = RpcSession(stream, name="host")
    plugin.on_request_inline("add", lambda p: p.a + p.b, params_type=Add)
    writes: list[bytes] = []
    writer = stream._writer
    assert writer is not None
    write = writer.write_nowait

    def counted(data: bytes) -> bool:
        writes.append(data)
        return write(data)

    writer.write_nowait = counted  # type: ignore[method-assign]
    frames = b"".join(
        encode_message(Request(id=n, method="add", params={"a": n, "b": 1})) for n in range(50)
    )
    os.write(to_plugin_w, frames)  # all in the pipe before the loop reads it
    os.set_blocking(to_host_r, False)
    received = b""
    with anyio.fail_after(10):
        async with plugin:
            while received.count(b"\n") < 50:
                await anyio.sleep(0.001)  # polling a raw fd the test owns, bounded above
                try:
                    received += os.read(to_host_r, 1 << 16)
                except BlockingIOError:
                    continue
    os.close(to_plugin_w)
    os.close(to_host_r)
    replies = [msgspec.json.decode(line) for line in received.splitlines()]
    assert {r["id"]: r["result"] for r in replies} == {n: n + 1 for n in range(50)}
    assert [w.count(b"\n") for w in writes] == [16, 16, 16, 2]
    assert HOLD_FLUSH_FRAMES == 16
    assert b"".join(writes) == received


async def test_calls_made_in_one_turn_are_written_a_few_frames_per_write() -> None:
    """50 calls started in one loop turn: the first is written at once, the others held and
    written HOLD_FLUSH_FRAMES at a time, the rest at the start of the next turn."""
    async with pipe_peers() as (host, plugin):
        plugin.on_request_inline("add", lambda p: p.a + p.b, params_type=Add)
        writer = host._stream._writer  # type: ignore[attr-defined]
        writes: list[bytes] = []
        write = writer.write_nowait

        def counted(data: bytes) -> bool:
            writes.append(data)
            return write(data)

        writer.write_nowait = counted
        sums: dict[int, int] = {}

        async def call(n: int) -> None:
            sums[n] = await host.request("add", {"a": n, "b": n})

        async with anyio.create_task_group() as group:
            for n in range(50):
                group.start_soon(call, n)
    assert sums == {n: 2 * n for n in range(50)}
    assert [w.count(b"\n") for w in writes] == [1, 16, 16, 16, 1]


async def test_an_inline_error_is_answered_once_and_bad_params_never_reach_it() -> None:
    calls: list[int] = []

    def picky(params: Add) -> int:
        calls.append(params.a)
        if params.a < 0:
            raise ValueError("negative numbers are not served here")
        return params.a

    async with pipe_peers() as (host, plugin):
        plugin.on_request_inline("picky", picky, params_type=Add)
        with pytest.raises(RemoteError, match="negative numbers"):
            await host.request("picky", {"a": -1, "b": 0})
        with pytest.raises(InvalidParams):
            await host.request("picky", {"a": "one", "b": 0})
        assert await host.request("picky", {"a": 7, "b": 0}) == 7
    assert calls == [-1, 7]  # the failing call ran once; the bad params never reached it


async def test_an_unencodable_inline_result_fails_only_that_call() -> None:
    async with pipe_peers() as (host, plugin):
        plugin.on_request_inline("odd", lambda p: object() if p["odd"] else "fine")
        with pytest.raises(InternalError, match="not JSON"):
            await host.request("odd", {"odd": True})
        assert await host.request("odd", {"odd": False}) == "fine"


async def test_an_inline_request_behind_queued_notifications_waits_its_turn() -> None:
    seen: list[str] = []

    async def note(params: dict[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()  # the notification handler suspends: order must hold
        seen.append(f"note {params['n']}")

    def answer(params: dict[str, Any]) -> str:
        seen.append("inline")
        return "ok"

    async with pipe_peers() as (host, plugin):
        plugin.on_notification("note", note)
        plugin.on_request_inline("answer", answer)
        for n in range(3):
            await host.notify("note", {"n": n})
        assert await host.request("answer", {}) == "ok"
    assert seen == ["note 0", "note 1", "note 2", "inline"]


async def test_over_a_stream_that_cannot_write_at_once_a_task_answers_it() -> None:
    left_stream, right_stream = memory_message_pair()
    host, plugin = RpcSession(left_stream, name="plugin"), RpcSession(right_stream, name="host")
    in_task: list[bool] = []

    def add(params: Add) -> int:
        in_task.append(asyncio.current_task() is not None)
        return params.a + params.b

    plugin.on_request_inline("add", add, params_type=Add)
    with anyio.fail_after(10):
        async with plugin, host:
            assert await host.request("add", {"a": 2, "b": 3}) == 5
    assert in_task == [True]


async def test_writes_without_a_coroutine_keep_the_pipes_backpressure() -> None:
    """Nobody reads the far end: `send` takes frames until the pipe (64 KiB) and the transport's
    high-water mark are full, then waits; `try_send` and `hold_nowait` refuse from then on."""
    idle_r, idle_w = os.pipe()  # what this stream reads: nothing ever arrives
    far_r, far_w = os.pipe()  # what it writes: nobody reads it
    stream = await _pipe_stream(idle_r, far_w)
    writer = stream._writer
    assert writer is not None
    frame = b"x" * 999 + b"\n"
    taken = 0
    with anyio.move_on_after(1):  # bounded: the send that waits is the point of the test
        while True:
            await stream.send(frame)
            taken += 1
    assert writer.buffered() <= DRAIN_ABOVE + len(frame)
    assert taken * len(frame) <= 64 * 1024 + DRAIN_ABOVE + len(frame)
    assert taken * len(frame) > DRAIN_ABOVE  # the pipe and the transport did fill first
    assert not stream.try_send(frame)
    assert not stream.hold_nowait(b"y" * (DRAIN_ABOVE + 1))
    await stream.aclose()
    for fd in (idle_w, far_r):
        os.close(fd)
