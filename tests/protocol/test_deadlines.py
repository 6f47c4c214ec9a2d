"""Request deadlines on one timer per session (`_deadlines`): each still fires on time, in any
order of timeouts, and answered requests leave nothing behind, whatever the call rate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from sdk.protocol import ConnectionClosed, PluginTimeout, RpcSession
from sdk.protocol._deadlines import SLACK, Deadlines
from sdk.protocol._inbound import Pending
from tests.protocol.test_session import Add, peers

pytestmark = pytest.mark.anyio
IN_FLIGHT = 64


async def _hang(_: Any) -> None:
    await anyio.sleep_forever()


def _timers() -> int:
    """The loop's live timers that serve request deadlines (asyncio keeps a heap of them)."""
    loop: Any = asyncio.get_running_loop()
    return sum(
        1
        for handle in loop._scheduled
        if not handle.cancelled()
        and (isinstance(getattr(handle._callback, "__self__", None), Deadlines | Pending))
    )


async def test_answered_calls_leave_neither_deadlines_nor_timers_behind() -> None:
    async with peers() as (left, _right):
        remaining, largest, timers = 5000, 0, 0

        async def worker() -> None:
            nonlocal remaining, largest, timers
            while remaining > 0:
                remaining -= 1
                assert await left.request("add", Add(2, 3), result_type=int, timeout=30) == 5
                largest = max(largest, len(left._deadlines))
                if remaining % 50 == 0:
                    timers = max(timers, _timers())

        async with anyio.create_task_group() as group:
            for _ in range(IN_FLIGHT):
                group.start_soon(worker)
        assert largest <= 2 * IN_FLIGHT + SLACK + 1  # bounded by what is in flight, not by calls
        assert timers == 1  # the session's one timer, not one per call in flight


async def test_a_short_deadline_behind_a_long_one_fires_on_time() -> None:
    async with peers() as (left, right):
        right.on_request("hang", _hang)
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: left.request("hang", {}, timeout=60))
            await anyio.wait_all_tasks_blocked()
            started = time.monotonic()
            with anyio.fail_after(5), pytest.raises(PluginTimeout):
                await left.request("hang", {}, timeout=0.1)
            assert 0.09 <= time.monotonic() - started < 5  # not the long deadline's 60 s
            group.cancel_scope.cancel()
        assert left.pending_count == 0


async def test_deadlines_keep_firing_after_one_fired_and_among_answered_calls() -> None:
    async with peers() as (left, right):
        right.on_request("hang", _hang)
        for _ in range(3):
            with anyio.fail_after(5), pytest.raises(PluginTimeout):
                await left.request("hang", {}, timeout=0.05)
            for n in range(100):  # answered before their deadline: none of them expires
                assert await left.request("add", Add(n, 1), result_type=int, timeout=0.5) == n + 1
        assert left.pending_count == 0


async def test_a_cancelled_callers_deadline_expires_nothing_later() -> None:
    async with peers() as (left, right):
        right.on_request("hang", _hang)
        with anyio.move_on_after(0.05):
            await left.request("hang", {}, timeout=0.2)
        # The cancelled request's deadline passes while this one waits on its answer.
        slow_add_done = anyio.Event()

        async def slow_add(params: Add) -> int:
            await anyio.sleep(0.3)
            slow_add_done.set()
            return params.a + params.b

        right.on_request("slow_add", slow_add, params_type=Add)
        with anyio.fail_after(5):
            assert await left.request("slow_add", Add(1, 1), result_type=int, timeout=3) == 2
        assert slow_add_done.is_set()
        assert left.pending_count == 0


async def test_closing_the_session_drops_its_deadlines_and_timer() -> None:
    async with peers() as (left, right):
        right.on_request("hang", _hang)
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(_ignore_closed, left)
            await anyio.wait_all_tasks_blocked()
            assert len(left._deadlines) == 10
            await left.aclose()
        assert len(left._deadlines) == 0
        assert _timers() == 0


async def _ignore_closed(session: RpcSession) -> None:
    with pytest.raises(ConnectionClosed):  # the close fails every pending request
        await session.request("hang", {}, timeout=60)
