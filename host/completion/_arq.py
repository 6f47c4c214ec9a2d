"""Completion layer: the same job on ARQ (Redis), so many workers on many machines share the load.

Contract: `enqueue_run_integrations(run_id, redis_url=...)` enqueues with the job id `run-<id>`, so
a duplicate enqueue is a no-op. `worker_settings(...)` builds an ARQ worker whose job calls
`run_integrations` against a `PluginHost` and the shared run store; ARQ's own retries are bounded
(`MAX_TRIES`) and map onto ours: a retried job re-runs only the nodes without a recorded result.
Plugin start-up never counts inside a job's deadline: the worker resolves specs and starts its
completion plugins when it starts, and each job makes sure they are ready (under its own
start-up budget, `start_budget_s`) before its deadline (`job_timeout_s`) begins.
The only module that imports arq.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from arq import Retry, create_pool
from arq.connections import RedisSettings

from sdk.protocol import PluginError, iter_nodes

from .._host import HostConfig, PluginHost
from ._arq_codec import decode_job, encode_job
from ._orchestrator import run_integrations
from ._store import SQLiteRunStore, WorkflowRun

logger = logging.getLogger("plugbox.arq")
JOB_NAME = "run_integrations_job"
MAX_TRIES = 3  # ARQ re-runs a job whose worker died; results already recorded are not redone
JOB_TIMEOUT_S = 900  # all phases with every plugin retry, with margin
# Resolving specs and starting plugins before a job's deadline starts: a cold sandboxed start
# takes ~0.3 s on a quiet 2-core machine and several seconds when many start at once.
START_BUDGET_S = 30.0
RETRY_DEFER_S = 1.0  # a job past its deadline runs again after this


def job_id(run_id: int) -> str:
    return f"run-{run_id}"


async def enqueue_run_integrations(run_id: int, *, redis_url: str) -> bool:
    """Queue post-call work for a run on Redis; False when that job already exists."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url), job_serializer=encode_job, job_deserializer=decode_job
    )
    try:
        job = await pool.enqueue_job(JOB_NAME, run_id, _job_id=job_id(run_id))
        return job is not None
    finally:
        await pool.aclose()


async def ready_plugins(plugins: PluginHost, run: WorkflowRun | None = None) -> None:
    """Resolve plugin specs and start the completion plugins `run` needs (all when None).

    Best effort, never raises: a plugin that cannot start is left to the job, which records
    the failure for its nodes.
    """
    registry = plugins.registry
    if not registry.packages() or registry.errors:
        await registry.refresh()
    names = set(registry.packages_with_completion())
    if run is not None:
        types = {str(node.get("type")) for node in iter_nodes(run.workflow_definition)}
        names &= {registry.package_for_type(t) for t in types} - {None}

    async def start(name: str) -> None:
        try:
            await plugins.get(name).start()
        except PluginError as exc:
            logger.warning("completion plugin %r did not start: %s", name, exc)

    async with anyio.create_task_group() as group:
        for name in sorted(names):
            group.start_soon(start, name)


async def run_integrations_job(ctx: dict[str, Any], run_id: int) -> dict[str, Any]:
    """The ARQ job: plugins made ready first, then the orchestration under the job's deadline."""
    with anyio.move_on_after(ctx["start_budget_s"]):
        await ready_plugins(ctx["plugins"], await ctx["store"].get_run(run_id))
    try:
        with anyio.fail_after(ctx["job_timeout_s"]):
            report = await run_integrations(run_id, plugins=ctx["plugins"], store=ctx["store"])
    except TimeoutError:
        # Nodes recorded so far stay recorded; ARQ runs the job again (bounded by MAX_TRIES)
        # for the rest instead of dropping it.
        logger.warning("run %d passed its %g s deadline; retrying", run_id, ctx["job_timeout_s"])
        raise Retry(defer=RETRY_DEFER_S) from None
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
    start_budget_s: float = START_BUDGET_S,
) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (or `run_worker`).

    ARQ's own timeout is the start-up budget plus the job's deadline; a job whose worker died
    is taken up again by another worker when ARQ's in-progress mark expires (that timeout + 10 s).
    """

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["job_timeout_s"] = job_timeout_s
        ctx["start_budget_s"] = start_budget_s
        ctx["plugins"] = await PluginHost(host_config).__aenter__()
        ctx["store"] = await SQLiteRunStore(store_path).__aenter__()
        with anyio.move_on_after(start_budget_s):
            await ready_plugins(ctx["plugins"])  # warm before the first job, outside deadlines

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
        "job_timeout": start_budget_s + job_timeout_s,
        "handle_signals": True,
        # JSON with a schema, never ARQ's default pickle (see _arq_codec).
        "job_serializer": encode_job,
        "job_deserializer": decode_job,
    }
