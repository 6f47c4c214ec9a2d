"""Completion layer: the delivery gate, which bounds what a crash can make the host deliver twice.

Contract: a completion call is a side effect the host cannot take back (a webhook, a CRM write).
Between "request sent" and "result recorded" a crash of the worker loses the knowledge that it
happened, so the job's next run delivers those nodes again (with the same idempotency keys).
`DeliveryGate.delivering()` is held from a call's start until its result is recorded, and one
worker shares one gate across all its jobs: at any time a worker has at most one plugin call in
that window, so one SIGKILL duplicates at most one call's nodes (one node per plugin and run in
the usual definition). Plugin starts, backoff and circuit waits happen outside the gate. Inside
it, before each delivery, `confirm()` (the job runner's lease renewal) makes sure the job is
still this worker's: a worker that stalled past its lease never delivers what another worker has
taken over; it raises `LeaseLost`, and the runner (which `confirm` told) stops the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

Confirm = Callable[[], Awaitable[bool]]


class LeaseLost(Exception):
    """The job's lease was taken over; this worker must not deliver for it any more."""


@dataclass
class DeliveryGate:
    lock: anyio.Lock = field(default_factory=anyio.Lock)  # one per worker, shared by its jobs
    confirm: Confirm | None = None  # per job: renews its lease; False when it was lost

    def for_job(self, confirm: Confirm) -> DeliveryGate:
        """The same worker-wide gate, confirming one job's lease before each delivery."""
        return DeliveryGate(self.lock, confirm)

    @asynccontextmanager
    async def delivering(self) -> AsyncIterator[None]:
        async with self.lock:
            if self.confirm is not None and not await self.confirm():
                raise LeaseLost("the job's lease was lost before this delivery")
            yield


def lease_lost(error: BaseException) -> bool:
    """Whether `error` (possibly a task group's exception group) is a `LeaseLost`."""
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(LeaseLost) is not None
    return isinstance(error, LeaseLost)
