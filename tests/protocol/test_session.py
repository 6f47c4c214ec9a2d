"""Session: both peers in one event loop over in-memory streams that go through real framing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from sdk.protocol import (
    ConnectionClosed,
    FrameTooLarge,
    InvalidParams,
    MethodNotFound,
    PluginTimeout,
    RemoteError,
    RpcSession,
    memory_message_pair,
)

pytestmark = pytest.mark.anyio


class Add(msgspec.Struct):
    a: int
    b: int


@asynccontextmanager
async def peers(max_frame_size: int = 1 << 20) -> AsyncIterator[tuple[RpcSession, RpcSession]]:
    left_stream, right_stream = memory_message_pair(max_frame_size)
    left = RpcSession(left_stream, name="left", max_frame_size=max_frame_size)
    right = RpcSession(right_stream, name="right", max_frame_size=max_frame_size)
    for session in (left, right):
        session.on_request("add", _add, params_type=Add)
    with anyio.fail_after(10):
        async with left, right:
            yield left, right


async def _add(params: Add) -> int:
    await anyio.lowlevel.checkpoint()
    return params.a + params.b


async def test_a_thousand_concurrent_requests_each_way_are_correlated() -> None:
    results: dict[tuple[str, int], int] = {}

    async def call(session: RpcSession, side: str, n: int) -> None:
        results[(side, n)] = await session.request("add", Add(n, 1000), result_type=int)

    async with peers() as (left, right), anyio.create_task_group() as group:
        for n in range(1000):
            group.start_soon(call, left, "left", n)
            group.start_soon(call, right, "right", n)
    assert results == {(side, n): n + 1000 for side in ("left", "right") for n in range(1000)}


async def test_a_timed_out_request_is_cancelled_on_the_far_side_and_gets_no_reply() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def hang(_: Any) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    async with peers() as (left, right):
        right.on_request("hang", hang)
        with pytest.raises(PluginTimeout) as caught:
            await left.request("hang", {}, timeout=0.05)
        await cancelled.wait()
        assert caught.value.method == "hang"
        assert caught.value.plugin == "left"
        assert left.pending_count == 0
        assert await left.request("add", Add(1, 2), result_type=int) == 3


async def test_a_caller_cancellation_cancels_the_handler_on_the_far_side() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def hang(_: Any) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    async with peers() as (left, right):
        right.on_request("hang", hang)
        async with anyio.create_task_group() as group:
            group.start_soon(left.request, "hang", {})
            await started.wait()
            group.cancel_scope.cancel()
        await cancelled.wait()


async def test_a_handler_exception_arrives_as_a_remote_error_with_its_traceback() -> None:
    async def fail(_: Any) -> None:
        raise KeyError("missing-thing")

    async with peers() as (left, right):
        right.on_request("fail", fail)
        with pytest.raises(RemoteError) as caught:
            await left.request("fail", {})
    assert caught.value.remote_type == "KeyError"
    assert "missing-thing" in caught.value.remote_traceback
    assert "in fail" in caught.value.remote_traceback
    assert caught.value.code == RemoteError.code


async def test_unknown_methods_and_bad_params_get_their_json_rpc_codes() -> None:
    async with peers() as (left, _right):
        with pytest.raises(MethodNotFound) as unknown:
            await left.request("no.such.method", {})
        with pytest.raises(InvalidParams) as invalid:
            await left.request("add", {"a": "one"})
    assert unknown.value.code == -32601
    assert invalid.value.code == -32602


async def test_an_oversize_result_fails_only_that_call() -> None:
    async def big(_: Any) -> str:
        return "x" * 5000

    async with peers(max_frame_size=2000) as (left, right):
        right.on_request("big", big)
        with pytest.raises(FrameTooLarge):
            await left.request("big", {})
        assert await left.request("add", Add(2, 2), result_type=int) == 4


async def test_closing_the_stream_fails_every_pending_call_with_one_clear_error() -> None:
    started = anyio.Event()
    errors: list[BaseException] = []

    async def hang(_: Any) -> None:
        started.set()
        await anyio.sleep_forever()

    async def call(session: RpcSession) -> None:
        try:
            await session.request("hang", {})
        except ConnectionClosed as exc:
            errors.append(exc)

    async with peers() as (left, right):
        right.on_request("hang", hang)
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(call, left)
            await started.wait()
            await right.aclose()
    assert len(errors) == 5
    assert all(isinstance(error, ConnectionClosed) and error.plugin == "left" for error in errors)
    with pytest.raises(ConnectionClosed):
        await left.request("add", Add(1, 1))


async def test_notifications_run_in_order_and_get_no_answer() -> None:
    seen: list[int] = []
    done = anyio.Event()

    async def note(params: dict[str, int]) -> None:
        seen.append(params["n"])
        if len(seen) == 100:
            done.set()

    async with peers() as (left, right):
        right.on_notification("note", note)
        for n in range(100):
            await left.notify("note", {"n": n})
        await done.wait()
    assert seen == list(range(100))
