"""The ARQ reaper's rule: every re-queue gets an id ARQ accepts; a live entry is left alone.

A fake broker at the `Queue` seam walks the rule's cases; the same rule then runs on a real
redis-server against ARQ's own keys. `test_arq.py` proves it end to end: worker processes that
take the run from ARQ and die before the store's claim, and the next worker runs it at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from redis.asyncio import Redis

from host.completion._arq import RedisQueue, _pool, enqueue_run_integrations
from host.completion._reaper import (
    MAX_GENERATIONS,
    Entry,
    EntryKind,
    job_id,
    requeue,
)
from host.store import Job, JobState

from ._scaleout import REDIS, RedisServer

pytestmark = pytest.mark.anyio
GRACE_S = 2.0
IN_PROGRESS_S = 95.0  # ARQ's hold on a taken id in these tests: its job timeout plus 10 s


class FakeQueue:
    """A broker that refuses an id it holds, as ARQ does (one checkpoint per look-up, so two
    reapers interleave)."""

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries = dict(entries or {})
        self.queued: list[str] = []

    async def entry(self, entry_id: str) -> Entry:
        await anyio.lowlevel.checkpoint()
        return self.entries.get(entry_id, Entry(EntryKind.FREE))

    async def enqueue(self, run_id: int, entry_id: str) -> bool:
        if entry_id in self.entries:
            return False
        self.entries[entry_id] = Entry(EntryKind.QUEUED)
        self.queued.append(entry_id)
        return True


def pending(run_id: int = 7, claims: int = 0) -> Job:
    return Job(run_id, JobState.PENDING, claims, 0, None, None, 0.0, None, None)


def taken(seconds_ago: float) -> Entry:
    return Entry(EntryKind.TAKEN, taken_s=seconds_ago)


def test_each_generation_has_an_id_of_its_own() -> None:
    running = Job(7, JobState.RUNNING, 2, 1, "w", 12.5, 0.0, None, None)
    assert job_id(7) == job_id(pending()) == "run-7"  # the platform's enqueue, then the reaper's
    assert job_id(pending(claims=2)) == "run-7-c2"
    assert job_id(running) == "run-7-c2-12500"  # a takeover: one per expired lease


async def test_an_entry_redis_lost_is_queued_again_under_its_id() -> None:
    queue = FakeQueue()
    assert await requeue(queue, pending(), grace_s=GRACE_S) == "run-7"
    assert queue.queued == ["run-7"]


@pytest.mark.parametrize(
    "entry", [Entry(EntryKind.QUEUED), taken(GRACE_S / 4)], ids=["waiting", "just-taken"]
)
async def test_a_waiting_or_just_taken_entry_is_left_alone(entry: Entry) -> None:
    queue = FakeQueue({"run-7": entry})
    assert await requeue(queue, pending(), grace_s=GRACE_S) is None
    assert queue.queued == []


async def test_each_entry_a_dead_worker_holds_is_passed_over_once() -> None:
    queue = FakeQueue({"run-7": taken(GRACE_S * 5), "run-7-g1": taken(GRACE_S)})
    assert await requeue(queue, pending(), grace_s=GRACE_S) == "run-7-g2"
    assert await requeue(queue, pending(), grace_s=GRACE_S) is None  # g2 waits for a worker
    assert queue.queued == ["run-7-g2"]


async def test_a_finished_entry_of_a_job_still_claimable_is_passed_over() -> None:
    queue = FakeQueue({"run-7-c2": Entry(EntryKind.FINISHED)})
    assert await requeue(queue, pending(claims=2), grace_s=GRACE_S) == "run-7-c2-g1"


async def test_two_reapers_at_once_queue_one_entry() -> None:
    queue = FakeQueue({"run-7": taken(GRACE_S * 5)})
    results: list[str | None] = []

    async def reap() -> None:
        results.append(await requeue(queue, pending(), grace_s=GRACE_S))

    async with anyio.create_task_group() as group:
        group.start_soon(reap)
        group.start_soon(reap)
    assert sorted(results, key=str) == [None, "run-7-g1"]
    assert queue.queued == ["run-7-g1"]


async def test_the_walk_is_bounded() -> None:
    dead = {f"run-7-g{n}" if n else "run-7": taken(60.0) for n in range(MAX_GENERATIONS)}
    queue = FakeQueue(dead)
    assert await requeue(queue, pending(), grace_s=GRACE_S) is None
    assert queue.queued == []


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    if REDIS is None:
        pytest.skip("redis-server not installed (tools/system-deps.sh installs it)")
    server = RedisServer(tmp_path)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server.url
    finally:
        server.stop()


async def _take(client: Redis, entry_id: str, seconds_ago: float) -> None:
    """What ARQ's worker writes when it takes an entry, as it reads `seconds_ago` later."""
    ttl_ms = int((IN_PROGRESS_S - seconds_ago) * 1000)
    await client.psetex(f"arq:in-progress:{entry_id}", ttl_ms, b"1")


async def test_on_redis_a_dead_workers_entries_are_passed_over_and_live_ones_kept(
    redis_url: str,
) -> None:
    pool = await _pool(redis_url)
    queue = RedisQueue(pool, in_progress_s=IN_PROGRESS_S)
    try:
        async with Redis.from_url(redis_url) as client:
            assert (await queue.entry("run-7")).kind is EntryKind.FREE
            assert await enqueue_run_integrations(7, redis_url=redis_url)
            assert (await queue.entry("run-7")).kind is EntryKind.QUEUED
            assert await requeue(queue, pending(), grace_s=GRACE_S) is None

            await _take(client, "run-7", seconds_ago=GRACE_S / 4)  # a worker claims shortly
            assert (await queue.entry("run-7")).kind is EntryKind.TAKEN
            assert await requeue(queue, pending(), grace_s=GRACE_S) is None

            await _take(client, "run-7", seconds_ago=GRACE_S * 5)  # that worker died
            assert 9.0 <= (await queue.entry("run-7")).taken_s <= 11.0
            assert await requeue(queue, pending(), grace_s=GRACE_S) == "run-7-g1"
            assert await client.zscore("arq:queue", "run-7-g1") is not None  # a worker takes it
            assert await requeue(queue, pending(), grace_s=GRACE_S) is None

            await _take(client, "run-7-g1", seconds_ago=GRACE_S * 2)  # the second death
            assert await requeue(queue, pending(), grace_s=GRACE_S) == "run-7-g2"

            await client.delete("arq:job:run-7-g2")  # over on ARQ, its result kept
            await client.set("arq:result:run-7-g2", b"{}")
            assert (await queue.entry("run-7-g2")).kind is EntryKind.FINISHED
            assert await requeue(queue, pending(), grace_s=GRACE_S) == "run-7-g3"
    finally:
        await pool.aclose()


async def test_on_redis_an_entry_held_longer_than_this_worker_would_is_aged_by_sight(
    redis_url: str,
) -> None:
    """A worker with longer timeouts took the entry and died: its in-progress mark reads as
    fresh by this worker's timeouts, so the reaper ages it by how long it has seen it held."""
    now = [100.0]
    seen: dict[str, float] = {}

    def clock() -> float:
        return now[0]

    pool = await _pool(redis_url)
    try:
        async with Redis.from_url(redis_url) as client:
            assert await enqueue_run_integrations(7, redis_url=redis_url)
            await client.psetex("arq:in-progress:run-7", int(IN_PROGRESS_S * 10 * 1000), b"1")
            for step, expected in ((0.0, None), (GRACE_S / 2, None), (GRACE_S, "run-7-g1")):
                now[0] = 100.0 + step
                queue = RedisQueue(pool, in_progress_s=IN_PROGRESS_S, seen=seen, clock=clock)
                assert await requeue(queue, pending(), grace_s=GRACE_S) == expected, step
                assert queue.looked == {"run-7"}
            assert seen == {"run-7": 100.0}  # first seen at the first pass
    finally:
        await pool.aclose()
