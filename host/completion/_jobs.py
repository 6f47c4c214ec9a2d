"""Completion layer: durable jobs — one job's run under a renewed lease, and the embedded worker.

Contract: the run store is the source of truth for every job on either backend (`RunStore`).
`JobRunner.run(run_id)` runs a claimed job's `run_integrations` while a heartbeat renews the
worker instance's lease every third of `lease_s`, and renews it again before each delivery; a
lost lease (another worker took the job after this one stalled) cancels the work. The runner's
delivery gate (`_gate`) is shared by all the worker's jobs: at most one plugin call per worker is
between "sent" and "recorded", the most a SIGKILL of the worker can make it deliver twice. The
job ends `done`, `partial` or `failed` from its nodes' current results (`failed` with the error
when the job itself broke); a cancelled job (a drain) is released back to `pending`. A job that
meets an open circuit is deferred: released to `pending`, claimable again when the circuit lets
a trial through, its slot free for other jobs meanwhile (up to `MAX_DEFERRALS` claims; then it
waits in its slot, bounded by its deadline). `EmbeddedWorker.run()` claims jobs with bounded
concurrency until `drain()`; jobs of a dead worker come back when its lease expires (seconds),
and a job whose runs kept killing the worker is parked after `max_deaths`. Storage faults are
waited out by the store; a `StoreError` (persistent) stops the worker with that error, naming
the file.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import anyio

from ..store import Job, JobState, RunStore, StoreError
from ._gate import DeliveryGate, lease_lost
from ._orchestrator import run_integrations

if TYPE_CHECKING:
    from .._host import PluginHost

logger = logging.getLogger("plugbox.jobs")
LEASE_S = 30.0  # a dead worker's jobs are taken over after this; renewed while a job runs
IDLE_POLL_S = 1.0  # how often an idle worker looks for expired leases
MAX_DEATHS = 3  # a job whose runs killed the worker this often is parked
# A job deferred past open circuits this often (claims) waits the next one out in its slot,
# bounded by its deadline, then fails retryably: a plugin that never recovers ends somewhere.
MAX_DEFERRALS = 8
# A run's result: its final state, the error when it failed, the delay when it was deferred.
Outcome = tuple[JobState, str | None, float | None]


def may_defer(job: Job) -> bool:
    return job.claims <= MAX_DEFERRALS


def instance_id() -> str:
    """A worker instance's id: unique even when a restarted container reuses PID 1."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def outcome_state(statuses: list[str]) -> JobState:
    """A finished job's state from its nodes' current results."""
    if not statuses or all(status == "done" for status in statuses):
        return JobState.DONE
    return JobState.FAILED if all(s == "failed" for s in statuses) else JobState.PARTIAL


async def enqueue(store: RunStore, run_id: int) -> bool:
    """Queue post-call work for a run; False when it was already queued."""
    return await store.enqueue(run_id)


async def job_state(store: RunStore, run_id: int) -> str | None:
    job = await store.get_job(run_id)
    return job.state.value if job else None


class JobRunner:
    """Runs claimed jobs for one worker instance, each under its renewed lease."""

    def __init__(
        self, store: RunStore, plugins: PluginHost, *, owner: str, lease_s: float = LEASE_S
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.owner = owner
        self.lease_s = lease_s
        self.gate = DeliveryGate()  # this worker's: one delivery in flight across all its jobs

    async def run(
        self, run_id: int, *, deadline: float | None = None, defer: bool = True
    ) -> JobState | None:
        """Run a job this instance has claimed; its final state (`pending` when it was deferred
        past an open circuit), or None when it was not ours to finish (lease lost). Raises
        `StoreError` when the store is gone for good."""
        leased = _LeasedRun(self, run_id)
        try:
            await leased.run(deadline, defer)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.store.release(run_id, self.owner)  # drained: back to pending
            raise
        if leased.fatal is not None:
            raise leased.fatal
        if leased.lost or leased.outcome is None:
            return None
        return await self._settle(run_id, leased.outcome)

    async def _settle(self, run_id: int, outcome: Outcome) -> JobState:
        """Record a run's outcome in the store; the job's state after it."""
        state, error, deferred_s = outcome
        if deferred_s is not None:  # the slot is free for other jobs while the circuit is open
            await self.store.release(run_id, self.owner, delay_s=deferred_s)
            return JobState.PENDING
        await self.store.finish(run_id, self.owner, state, error)
        return state

    async def _execute(
        self, run_id: int, deadline: float | None, gate: DeliveryGate, defer: bool
    ) -> Outcome | None:
        try:
            report = await run_integrations(
                run_id,
                plugins=self.plugins,
                store=self.store,
                deadline=deadline,
                gate=gate,
                defer=defer,
            )
        except StoreError:
            raise
        except Exception as exc:  # the job boundary: one broken run never stops the worker
            if lease_lost(exc):
                return None  # another worker runs it now; `confirm` stopped this one
            logger.exception("completion job for run %d failed", run_id)
            return JobState.FAILED, f"{type(exc).__name__}: {exc}", None
        if report.deferred_s is not None:
            return JobState.PENDING, None, report.deferred_s
        recorded = await self.store.recorded_nodes(run_id)
        return outcome_state(list(recorded.values())), None, None


class _LeasedRun:
    """One job's work beside the heartbeat that renews its lease; either one can stop the other.

    A separate object so the work, the heartbeat and the pre-delivery check share the run's
    state (its outcome, a fatal store error, a lost lease) and its cancel scope.
    """

    def __init__(self, runner: JobRunner, run_id: int) -> None:
        self.runner = runner
        self.run_id = run_id
        self.outcome: Outcome | None = None
        self.fatal: StoreError | None = None
        self.lost = False  # another worker holds the lease now: this one must not finish the job
        self._scope = anyio.CancelScope()  # replaced by the task group's in `run`

    async def run(self, deadline: float | None, defer: bool) -> None:
        async with anyio.create_task_group() as group:
            self._scope = group.cancel_scope
            group.start_soon(self._work, deadline, defer)
            group.start_soon(self._heartbeat)

    async def _work(self, deadline: float | None, defer: bool) -> None:
        try:
            gate = self.runner.gate.for_job(self._confirm)
            self.outcome = await self.runner._execute(self.run_id, deadline, gate, defer)
        except StoreError as exc:
            self.fatal = exc
        self._scope.cancel()

    async def _confirm(self) -> bool:
        """Before each delivery: the lease renewed now, or the job stopped."""
        if await self._renew():
            return True
        logger.error("run %d: lease lost to another worker; not delivering", self.run_id)
        self._lose()
        return False

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.runner.lease_s / 3)
            if not await self._renew():
                logger.error("run %d: lease lost to another worker; stopping it", self.run_id)
                self._lose()

    async def _renew(self) -> bool:
        runner = self.runner
        return await runner.store.renew(self.run_id, runner.owner, lease_s=runner.lease_s)

    def _lose(self) -> None:
        self.lost = True
        self._scope.cancel()


class EmbeddedWorker:
    """Runs queued jobs in this process, `concurrency` at a time."""

    def __init__(
        self,
        store: RunStore,
        plugins: PluginHost,
        *,
        concurrency: int = 4,
        lease_s: float = LEASE_S,
        max_deaths: int = MAX_DEATHS,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.max_deaths = max_deaths
        self.owner = instance_id()
        self.runner = JobRunner(store, plugins, owner=self.owner, lease_s=lease_s)
        self.finished: Counter[str] = Counter()  # runs per state they left ("pending": deferred)
        self._wake = anyio.Event()
        self._stopping = False
        self._idle = anyio.Event()
        self._fatal: StoreError | None = None
        self.alive = False  # True while `run()` is claiming jobs (`/readyz` reads it)

    def wake(self) -> None:
        self._wake.set()

    async def submit(self, run_id: int) -> None:
        await self.store.enqueue(run_id)
        self.wake()

    async def run(self) -> None:
        """Claim and run jobs until `drain()`; raises `StoreError` if the store is gone."""
        limiter = anyio.Semaphore(self.concurrency)
        self.alive = True
        try:
            async with anyio.create_task_group() as group:
                while not self._stopping:
                    await limiter.acquire()
                    job = await self._claim(limiter)
                    if job is None:
                        await self._wait_for_work()
                        continue
                    group.start_soon(self._run_job, job, limiter)
        finally:
            self.alive = False
            self._idle.set()
        if self._fatal is not None:
            raise self._fatal

    async def run_until_empty(self) -> None:
        """Run every queued job, waiting out other workers' expired leases, then return."""
        while True:
            job = await self.store.claim(
                self.owner, lease_s=self.lease_s, max_deaths=self.max_deaths
            )
            if job is not None:
                await self._run_job(job, None)
            elif await self.store.list_jobs(state=JobState.RUNNING, limit=1):
                await anyio.sleep(IDLE_POLL_S)  # an orphan's lease has not expired yet
            elif await self.store.list_jobs(state=JobState.PENDING, limit=1):
                await anyio.sleep(IDLE_POLL_S)  # deferred: its circuit is still open
            else:
                break
            if self._fatal is not None:
                raise self._fatal

    async def drain(self) -> None:
        self._stopping = True
        self.wake()
        await self._idle.wait()

    async def _claim(self, limiter: anyio.Semaphore) -> Job | None:
        try:
            job = await self.store.claim(
                self.owner, lease_s=self.lease_s, max_deaths=self.max_deaths
            )
        except BaseException:
            limiter.release()
            raise
        if job is None:
            limiter.release()
        return job

    async def _wait_for_work(self) -> None:
        with anyio.move_on_after(IDLE_POLL_S):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _run_job(self, job: Job, limiter: anyio.Semaphore | None) -> None:
        try:
            state = await self.runner.run(job.run_id, defer=may_defer(job))
            self.finished[state.value if state else "lost"] += 1
        except StoreError as exc:
            logger.error("stopping the worker: %s", exc)
            self._fatal = exc
            self._stopping = True
            self.wake()
        finally:
            if limiter is not None:
                limiter.release()
