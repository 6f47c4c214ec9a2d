"""Completion layer: the ARQ reaper's rule — a claimable job queued again under an id ARQ takes.

Contract: the run store is the source of truth; the broker only carries run ids. `job_id(job)`
is the base id of a job's queue entry: `run-<id>` first, then one per claim generation and, for
a takeover, one per expired lease. `requeue(queue, job, grace_s=...)` makes sure a job the store
calls claimable has an entry a live worker can take: it walks the job's generations (`<base>`,
`<base>-g1`, `<base>-g2`, ...) and stops at the first that is waiting in the queue, or was taken
by a worker less than `grace_s` ago (its claim is coming): nothing to do. An entry a worker took
longer ago than that, while the store still calls the job claimable, lost its worker between the
broker's hand-over and the store's claim: the broker holds that id for its whole job timeout, so
the next generation is queued instead. An entry that finished while the job is still claimable
is passed over the same way. Every reaper computes the same ids, so concurrent reapers queue one
entry, not one each. Extra entries never run a job twice: the store's claim decides who runs it
(an entry that finds it claimed is a no-op), so re-deliveries stay bounded by lease expiries.
`Queue` is the seam: `_arq` implements it on Redis; tests may use a fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ..store import Job, JobState

MAX_GENERATIONS = 1000  # stale entries walked per job: each one is a worker that died


class EntryKind(StrEnum):
    FREE = "free"  # no entry and no kept result: the id can be queued
    QUEUED = "queued"  # waiting for a worker (or deferred for a retry)
    TAKEN = "taken"  # a worker took it (alive, or dead until the broker's timeout)
    FINISHED = "finished"  # done on the broker; its kept result holds the id back


@dataclass(frozen=True)
class Entry:
    kind: EntryKind
    taken_s: float = 0.0  # TAKEN: how long ago a worker took it


class Queue(Protocol):
    """The broker, as the reaper sees it."""

    async def entry(self, entry_id: str) -> Entry:
        """The state of the entry under `entry_id`."""
        ...

    async def enqueue(self, run_id: int, entry_id: str) -> bool:
        """Queue `run_id` under `entry_id`; False when the broker refuses the id."""
        ...


def job_id(job: Job | int) -> str:
    """The base id of a job's entry: `run-<id>` for the platform's enqueue; then a new one per
    claim generation and, for a takeover, per expired lease, so a re-queue is never refused by
    an entry (or a kept result) of an earlier generation, e.g. the dead worker's."""
    if isinstance(job, int):
        return f"run-{job}"
    if job.state is JobState.RUNNING and job.lease_expires is not None:
        return f"run-{job.run_id}-c{job.claims}-{int(job.lease_expires * 1000)}"
    return f"run-{job.run_id}-c{job.claims}" if job.claims else f"run-{job.run_id}"


def generation_id(base: str, generation: int) -> str:
    """The id of the `generation`-th re-queue of the entry `base` (0: `base` itself)."""
    return f"{base}-g{generation}" if generation else base


def _stale(entry: Entry, grace_s: float) -> bool:
    """True when `entry` will not run the job (it lost its worker, or it is over)."""
    if entry.kind is EntryKind.FINISHED:
        return True
    return entry.kind is EntryKind.TAKEN and entry.taken_s >= grace_s


async def requeue(queue: Queue, job: Job, *, grace_s: float) -> str | None:
    """Queue `job` (claimable in the store) under its first free generation id, unless one of
    its entries is waiting or was taken less than `grace_s` ago. The id queued, else None."""
    base = job_id(job)
    for generation in range(MAX_GENERATIONS):
        candidate = generation_id(base, generation)
        entry = await queue.entry(candidate)
        if entry.kind is EntryKind.FREE:
            # False: another worker's reaper queued this very id a moment ago.
            return candidate if await queue.enqueue(job.run_id, candidate) else None
        if not _stale(entry, grace_s):
            return None  # a live entry: a worker takes it, or has and claims it shortly
    return None
