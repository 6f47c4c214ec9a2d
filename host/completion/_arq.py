"""Completion layer: the same jobs on ARQ (Redis), so many workers on many machines share them.

Contract: the run store is the source of truth; Redis only carries run ids.
`enqueue_run_integrations` records the job in the store (when given one) and queues `run-<id>`
(a duplicate is a no-op).
`serve_worker(...)` runs one worker instance until SIGTERM/SIGINT: each ARQ job claims its run in
the store under this instance's lease (a run done elsewhere, or running under a live lease, is a
no-op), makes the plugins it needs ready under `start_budget_s`, then runs under `job_timeout_s`
with the lease renewed. A reaper re-queues what the store says is claimable: pending jobs older
than `reap_after_s` (Redis lost them, or a worker took one and died before its claim) and jobs
on expired leases (their worker died), so a killed worker's jobs run again within `lease_s`
plus a reap interval; each re-queue gets an id ARQ accepts (`_reaper`), never one a dead
worker's entry holds for ARQ's job timeout. Redis errors never end the
worker: it reconnects with backoff. SIGTERM stops taking jobs, lets the running ones finish
within `grace_s`, releases the rest to pending, and returns (exit status 0). The only module
that imports arq.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from arq import Retry, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.worker import Worker

from sdk.protocol import PluginError, iter_nodes

from .._host import HostConfig, PluginHost
from ..store import RunStore, SQLiteRunStore, WorkflowRun, open_store
from ._arq_codec import decode_job, encode_job
from ._jobs import LEASE_S, MAX_DEATHS, JobRunner, instance_id, may_defer
from ._reaper import Entry, EntryKind, job_id, requeue

logger = logging.getLogger("plugbox.arq")
JOB_NAME = "run_integrations_job"
MAX_TRIES = 5  # ARQ's own re-runs; the store decides whether a run still needs work
JOB_TIMEOUT_S = 900.0  # all phases with every plugin retry, with margin
START_BUDGET_S = 30.0  # specs and plugin starts, before a job's deadline starts
RETRY_DEFER_S = 1.0  # a job past its deadline runs again after this
GRACE_S = 60.0  # SIGTERM: how long running jobs may take to finish
RECONNECT_MAX_S = 10.0  # longest pause between attempts to reach Redis
IN_PROGRESS_EXTRA_S = 10  # ARQ holds a taken job's id for its job timeout plus this


async def enqueue_run_integrations(
    run_id: int, *, redis_url: str, store: RunStore | None = None
) -> bool:
    """Queue post-call work for a run on Redis (and record the job in `store`, the source of
    truth a worker's reaper re-queues from); False when that job is already queued."""
    if store is not None:
        await store.enqueue(run_id)
    pool = await _pool(redis_url)
    try:
        return await pool.enqueue_job(JOB_NAME, run_id, _job_id=job_id(run_id)) is not None
    finally:
        await pool.aclose()


async def _pool(redis_url: str) -> ArqRedis:
    return await create_pool(
        RedisSettings.from_dsn(redis_url), job_serializer=encode_job, job_deserializer=decode_job
    )


@dataclass
class WorkerConfig:
    redis_url: str
    host_config: HostConfig
    store_path: Path  # the SQLite run store, unless `store_url` names another
    store_url: str | None = None  # e.g. postgresql://... : workers on many machines share it
    job_timeout_s: float = JOB_TIMEOUT_S
    start_budget_s: float = START_BUDGET_S
    lease_s: float = LEASE_S
    max_deaths: int = MAX_DEATHS
    grace_s: float = GRACE_S
    reap_after_s: float | None = None  # default: lease_s
    max_jobs: int = 10


async def ready_plugins(plugins: PluginHost, run: WorkflowRun | None = None) -> None:
    """Resolve specs and start the completion plugins `run` needs (all when None). Best effort:
    a plugin that cannot start is left to the job, which records the failure for its nodes."""
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
    """The ARQ job: claim the run in the store, ready its plugins, run it under its deadline."""
    config: WorkerConfig = ctx["config"]
    store: RunStore = ctx["store"]
    runner: JobRunner = ctx["runner"]
    job = await store.claim(
        runner.owner, lease_s=config.lease_s, max_deaths=config.max_deaths, run_id=run_id
    )
    if job is None:
        return {"run_id": run_id, "state": "not claimable"}  # done, parked, or running elsewhere
    with anyio.move_on_after(config.start_budget_s):
        await ready_plugins(ctx["plugins"], await store.get_run(run_id))
    try:
        with anyio.fail_after(config.job_timeout_s):
            until = anyio.current_time() + config.job_timeout_s
            state = await runner.run(run_id, deadline=until, defer=may_defer(job))
    except TimeoutError:
        # The runner released the job to pending; recorded nodes stay recorded.
        logger.warning("run %d passed its %g s deadline; retrying", run_id, config.job_timeout_s)
        raise Retry(defer=RETRY_DEFER_S) from None
    return {"run_id": run_id, "state": state.value if state else "lease lost"}


async def serve_worker(config: WorkerConfig) -> None:
    """One ARQ worker instance, until SIGTERM or SIGINT (see the module docstring)."""
    opened = (
        open_store(config.store_url, data_dir=config.host_config.data_dir)
        if config.store_url
        else SQLiteRunStore(config.store_path)
    )
    async with PluginHost(config.host_config) as plugins, opened as store:
        runner = JobRunner(store, plugins, owner=instance_id(), lease_s=config.lease_s)
        ctx: dict[str, Any] = {"config": config, "store": store, "plugins": plugins}
        ctx["runner"] = runner
        with anyio.move_on_after(config.start_budget_s):
            await ready_plugins(plugins)  # warm before the first job, outside any deadline
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_reap, config, store, stop)
                await _run_arq(config, ctx, stop)
                group.cancel_scope.cancel()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        logger.info("worker %s stopped", runner.owner)


async def _run_arq(config: WorkerConfig, ctx: dict[str, Any], stop: asyncio.Event) -> None:
    """ARQ's poll loop, started again after a Redis failure, until `stop`; then the drain."""
    pause = 0.5
    while not stop.is_set():
        worker = _worker(config, ctx)
        main = asyncio.ensure_future(worker.main())
        worker.main_task = main
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():
            await _drain(worker, main, config.grace_s)
            return
        error = main.exception()
        logger.error("lost Redis (%s); reconnecting in %.1f s", error, pause)
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await _close_quietly(worker)
        with anyio.move_on_after(pause):
            await stop.wait()
        pause = min(RECONNECT_MAX_S, pause * 2)


def _arq_timeout(config: WorkerConfig) -> float:
    """ARQ's timeout for one job: the start budget, the run's deadline, and a margin."""
    return config.start_budget_s + config.job_timeout_s + 5


def _worker(config: WorkerConfig, ctx: dict[str, Any]) -> Worker:
    function = run_integrations_job
    return Worker(
        functions=[function],
        redis_settings=RedisSettings.from_dsn(config.redis_url),
        ctx=dict(ctx),
        max_tries=MAX_TRIES,
        job_timeout=_arq_timeout(config),
        handle_signals=False,
        max_jobs=config.max_jobs,
        poll_delay=0.2,
        # JSON with a schema, never ARQ's default pickle (see _arq_codec).
        job_serializer=encode_job,
        job_deserializer=decode_job,
    )


async def _drain(worker: Worker, main: asyncio.Future[None], grace_s: float) -> None:
    """Stop taking jobs; let running ones finish within `grace_s`; cancel (release) the rest."""
    worker.allow_pick_jobs = False
    main.cancel()
    await asyncio.gather(main, return_exceptions=True)
    running = [task for task in worker.tasks.values() if not task.done()]
    logger.info("draining %d running jobs (up to %g s)", len(running), grace_s)
    if running:
        await asyncio.wait(running, timeout=grace_s)
    for task in running:
        task.cancel()  # the job releases its lease: another worker takes it at once
    await asyncio.gather(*running, return_exceptions=True)
    await _close_quietly(worker)


async def _close_quietly(worker: Worker) -> None:
    pool = worker._pool
    worker._pool = None
    if pool is not None:
        try:
            await pool.close(close_connection_pool=True)
        except Exception as exc:  # a dead connection cannot be closed cleanly; nothing is lost
            logger.debug("closing the Redis pool: %s", exc)


class RedisQueue:
    """The reaper's `Queue` on ARQ's keys: a job's entry, its in-progress mark, its result.

    A taken entry's age is read from its in-progress mark, as this worker's timeouts would have
    set it, and is at least how long this reaper has seen it taken (`seen`, kept across passes
    by the caller): a dead worker with longer timeouts than this one's still has its entries
    passed over once they have been seen held for the grace."""

    def __init__(
        self,
        pool: ArqRedis,
        *,
        in_progress_s: float,
        seen: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._in_progress_s = in_progress_s  # how long ARQ holds an id this worker took
        self._seen = {} if seen is None else seen  # entry id -> when first seen taken
        self._clock = clock
        self.looked: set[str] = set()  # the taken entries of this pass

    async def entry(self, entry_id: str) -> Entry:
        async with self._pool.pipeline(transaction=False) as pipe:
            pipe.exists(job_key_prefix + entry_id)
            pipe.pttl(in_progress_key_prefix + entry_id)
            pipe.exists(result_key_prefix + entry_id)
            queued, left_ms, finished = await pipe.execute()
        if left_ms != -2:  # -2: no in-progress mark; -1: one without expiry (never ARQ's own)
            return Entry(EntryKind.TAKEN, taken_s=self._taken_s(entry_id, left_ms))
        if queued:
            return Entry(EntryKind.QUEUED)
        return Entry(EntryKind.FINISHED if finished else EntryKind.FREE)

    def _taken_s(self, entry_id: str, left_ms: int) -> float:
        now = self._clock()
        self.looked.add(entry_id)
        seen_for = now - self._seen.setdefault(entry_id, now)
        left_s = left_ms / 1000 if left_ms >= 0 else self._in_progress_s
        return max(0.0, self._in_progress_s - left_s, seen_for)

    async def enqueue(self, run_id: int, entry_id: str) -> bool:
        return await self._pool.enqueue_job(JOB_NAME, run_id, _job_id=entry_id) is not None


async def _reap(config: WorkerConfig, store: RunStore, stop: asyncio.Event) -> None:
    """Queue on Redis what the store says is claimable (lost by Redis, or orphaned), under an
    id ARQ takes (`_reaper.requeue`)."""
    interval = max(0.2, config.lease_s / 3)
    older = config.reap_after_s if config.reap_after_s is not None else config.lease_s
    grace = max(older, interval)  # a worker that took an entry this long ago and has not claimed
    seen: dict[str, float] = {}  # taken entries of claimable jobs, and since when
    while not stop.is_set():
        await anyio.sleep(interval)
        pool: ArqRedis | None = None
        try:
            jobs = await store.claimable(older_than_s=older)
            if not jobs:
                seen.clear()
                continue
            pool = await _pool(config.redis_url)
            queue = RedisQueue(
                pool, in_progress_s=_arq_timeout(config) + IN_PROGRESS_EXTRA_S, seen=seen
            )
            queued = [await requeue(queue, job, grace_s=grace) for job in jobs]
            for gone in seen.keys() - queue.looked:  # claimed, done, or no longer held
                del seen[gone]
            if any(queued):
                logger.info("re-queued %d runs from the run store", sum(map(bool, queued)))
        except (TimeoutError, OSError, ConnectionError) as exc:
            logger.warning("reaper: Redis unreachable (%s); next try in %.1f s", exc, interval)
        except Exception as exc:  # redis-py's own errors; the reaper must outlive them
            logger.warning("reaper: %s: %s", type(exc).__name__, exc)
        finally:
            if pool is not None:
                await _close_pool(pool)


async def _close_pool(pool: ArqRedis) -> None:
    try:
        await pool.aclose()
    except Exception as exc:
        logger.debug("closing the reaper's Redis pool: %s", exc)
