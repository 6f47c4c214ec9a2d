"""Wire layer: the deadlines of a session's outgoing requests, on one loop timer.

Contract: `Deadlines.add(timeout, request_id, waiter)` makes `waiter.expire()` run once `timeout`
seconds have passed, unless the waiter's future is done by then (answered, failed, or its caller
cancelled). It holds one timer on the loop, armed for the earliest deadline still waiting, instead
of a timer per request: asyncio's `call_later` builds a `TimerHandle` per call and orders its heap
with Python-level comparisons, ~2 us of a ~12 us pipelined call on the host (docs/benchmarks.md).
Here a deadline is a tuple `(when, request id, waiter)` ordered in C (ids are unique per session,
so the waiter is never compared). Answered requests stay in the heap until they reach its top or
it holds more than twice what waits (plus `SLACK`), when it is rebuilt: memory stays bounded by
the requests in flight, at any call rate. `close()` drops every deadline and the timer.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Protocol

SLACK = 64  # done entries tolerated in the heap beyond twice the waiting ones


class Waiter(Protocol):
    """What a deadline needs of a pending request (`_inbound.Pending`)."""

    @property
    def future(self) -> asyncio.Future[None]: ...

    def expire(self) -> None: ...


class Deadlines:
    """One session's request deadlines, expired from a single loop timer."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int | str, Waiter]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = 0.0  # when the timer fires (meaningful while `_timer` is set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def add(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        request_id: int | str,
        waiter: Waiter,
        *,
        waiting: int,
    ) -> None:
        """Expire `waiter` after `timeout` seconds unless its future is done by then; `waiting`
        is how many requests of the session wait (an upper bound of the entries not done)."""
        self._loop = loop
        when = loop.time() + timeout
        heap = self._heap
        heapq.heappush(heap, (when, request_id, waiter))
        if self._timer is None or when < self._armed_at:
            self._arm(when)
        if len(heap) > 2 * waiting + SLACK:
            self._compact()  # what is left is at most `waiting`: the next one is far off

    def close(self) -> None:
        """Forget every deadline (the session closed: its waiters failed already)."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if not entry[2].future.done()]
        heapq.heapify(self._heap)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._fire)
        self._armed_at = when

    def _fire(self) -> None:
        """The timer is due: expire what is due by the loop's own judgement (every deadline up
        to the one it was armed for), drop answered entries on top, re-arm for the next."""
        self._timer = None
        heap, due = self._heap, self._armed_at
        while heap and heap[0][0] <= due:
            _, _, waiter = heapq.heappop(heap)
            if not waiter.future.done():
                waiter.expire()
        while heap and heap[0][2].future.done():
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
