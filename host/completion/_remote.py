"""Completion layer: the platform's call to queue a run's post-call work on Redis (ARQ).

Contract: `enqueue_run_integrations(run_id, redis_url=...)` is the public name for
`host.completion._arq.enqueue_run_integrations`; arq is imported only when it is called, so a
platform that runs completion embedded never loads it.
"""

from __future__ import annotations


async def enqueue_run_integrations(run_id: int, *, redis_url: str) -> bool:
    """Queue post-call work for a run on Redis; False when that job already exists."""
    from ._arq import enqueue_run_integrations as enqueue

    return await enqueue(run_id, redis_url=redis_url)
