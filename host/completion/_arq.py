"""Completion layer: the same job on ARQ (Redis), so many workers on many machines share the load.

Contract: `enqueue_run_integrations(run_id, redis_url=...)` enqueues with the job id `run-<id>`, so
a duplicate enqueue is a no-op. `worker_settings(...)` builds an ARQ worker whose job calls
`run_integrations` against a `PluginHost` and the shared run store; ARQ's own retries are bounded
(`MAX_TRIES`) and map onto ours: a retried job re-runs only the nodes without a recorded result.
The only module that imports arq.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from .._host import HostConfig, PluginHost
from ._orchestrator import run_integrations
from ._store import SQLiteRunStore

JOB_NAME = "run_integrations_job"
MAX_TRIES = 3  # ARQ re-runs a job whose worker died; results already recorded are not redone
JOB_TIMEOUT_S = 900  # all phases with every plugin retry, with margin


def job_id(run_id: int) -> str:
    return f"run-{run_id}"


async def enqueue_run_integrations(run_id: int, *, redis_url: str) -> bool:
    """Queue post-call work for a run on Redis; False when that job already exists."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        job = await pool.enqueue_job(JOB_NAME, run_id, _job_id=job_id(run_id))
        return job is not None
    finally:
        await pool.aclose()


async def run_integrations_job(ctx: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The ARQ job: the same orchestration the embedded worker runs."""
    report = await run_integrations(run_id, plugins=ctx["plugins"], store=ctx["store"])
    return {
        "run_id": run_id,
        "outcomes": [(o.plugin, o.status, o.attempts) for o in report.outcomes],
    }


def worker_settings(
    *,
    redis_url: str,
    host_config: HostConfig,
    store_path: Path,
    job: Callable[..., Awaitable[Any]] | None = None,
    job_timeout_s: float = JOB_TIMEOUT_S,
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (or `run_worker`)."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["plugins"] = await PluginHost(host_config).__aenter__()
        ctx["store"] = await SQLiteRunStore(store_path).__aenter__()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["store"].aclose()
        await ctx["plugins"].__aexit__(None, None, None)

    function = job or run_integrations_job
    function.__name__ = JOB_NAME
    return {
        "functions": [function],
        "redis_settings": RedisSettings.from_dsn(redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_tries": MAX_TRIES,
        "job_timeout": job_timeout_s,
        "handle_signals": True,
    }
