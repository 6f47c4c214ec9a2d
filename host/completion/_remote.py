"""Completion layer: the platform's call to queue a run's post-call work on Redis (ARQ).

Contract: `enqueue_run_integrations(run_id, redis_url=..., store=...)` is the public name for
`host.completion._arq.enqueue_run_integrations`; arq is imported only when it is called, so a
platform that runs completion embedded never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import RunStore


async def enqueue_run_integrations(
    run_id: int, *, redis_url: str, store: RunStore | None = None
) -> bool:
    """Queue post-call work for a run on Redis (and record the job in `store`, the source of
    truth a worker's reaper re-queues from); False when that job is already queued."""
    from ._arq import enqueue_run_integrations as enqueue

    return await enqueue(run_id, redis_url=redis_url, store=store)
