"""Scale-out on ARQ against a real redis-server on 127.0.0.1: workers killed, drained with
SIGTERM, and a Redis that restarts empty; the run store is the source of truth throughout."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from host.completion import SQLiteRunStore
from host.completion._arq import enqueue_run_integrations

from ._scaleout import REDIS, RedisServer, Workers, deliveries, ledger_definition, until_done

TAKEN_BOUND_S = 120  # a stalling worker starts and takes an entry of the run
REDELIVERY_BOUND_S = 60  # ARQ would hold a dead worker's entry for 95 s (its job timeout + 10)

JOBS = 200
LEASE_S = 2.0  # a dead worker's jobs move after this (the production default is 30 s)
# xdist: the scale-out tests run one after another on one worker (each starts worker
# processes and their plugins; two at once would make lease takeovers that no kill caused).
pytestmark = [
    pytest.mark.skipif(
        REDIS is None, reason="redis-server not installed (tools/system-deps.sh installs it)"
    ),
    pytest.mark.xdist_group("scaleout"),
]


@pytest.fixture(autouse=True)
def warm(tmp_path: Path, share_specs: Callable[[Path], Path]) -> None:
    """The workers' data dir reads the session's spec cache (tests/conftest.py): a worker
    (re)start loads specs from it instead of starting every plugin of the folder for them."""
    share_specs(tmp_path / "data")


@pytest.fixture
def redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(tmp_path)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def recorded(db_path: Path) -> Counter[int]:
    with sqlite3.connect(db_path, timeout=30) as db:
        return Counter(run_id for (run_id,) in db.execute("SELECT run_id FROM node_results"))


async def _prepare(data: Path, redis_url: str, definition: dict[str, object], n: int) -> list[int]:
    async with SQLiteRunStore(data / "runs.db") as store:
        ids = [await store.create_run(workflow_definition=definition) for _ in range(n)]
        for run_id in ids:
            assert await enqueue_run_integrations(run_id, redis_url=redis_url, store=store)
        assert not await enqueue_run_integrations(ids[0], redis_url=redis_url)  # a no-op
    return ids


def test_two_workers_complete_every_job_exactly_once_when_one_is_killed(
    tmp_path: Path, redis: RedisServer
) -> None:
    data = tmp_path / "data"
    definition = {"nodes": [{"id": "q", "type": "qa_probe", "data": {"name": "q"}}]}
    ids = anyio.run(_prepare, data, redis.url, definition, JOBS)
    workers = Workers.arq(tmp_path, redis.url, LEASE_S)
    first, _ = workers.start(), workers.start()
    try:
        anyio.run(until_done, data / "runs.db", JOBS // 5, workers, 240)
        workers.kill(first)  # mid-way, jobs in flight; its leases expire after LEASE_S
        anyio.run(until_done, data / "runs.db", JOBS, workers, 240)
    finally:
        workers.stop_all()
    counts = recorded(data / "runs.db")
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}  # every run's node recorded exactly once
    log = data / "plugins" / "qa_probe" / "data" / "executions.log"
    executions = Counter(int(line) for line in log.read_text().split())
    assert set(executions) == set(ids)
    assert max(executions.values()) <= 2  # only jobs in flight on the killed worker ran twice


def test_sigterm_drains_the_running_job_exits_0_and_delivers_once(
    tmp_path: Path, redis: RedisServer
) -> None:
    data = tmp_path / "data"
    definition = ledger_definition()
    for node in definition["nodes"]:  # type: ignore[attr-defined]
        node["data"]["sleep_s"] = 1.5  # each phase keeps the job in flight
    [run_id] = anyio.run(_prepare, data, redis.url, definition, 1)
    workers = Workers.arq(tmp_path, redis.url, LEASE_S)
    worker = workers.start()
    try:
        anyio.run(_until_running, data / "runs.db", run_id, workers)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, workers.tails()
    finally:
        workers.stop_all()
    with sqlite3.connect(data / "runs.db") as db:
        state = db.execute("SELECT state FROM jobs WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert state == "done", workers.tails()
    delivered = deliveries(data)
    assert len(delivered) == 3
    assert set(delivered.values()) == {1}  # no node delivered twice


def test_a_redis_restart_loses_the_queue_and_the_store_re_enqueues_it(
    tmp_path: Path, redis: RedisServer
) -> None:
    data = tmp_path / "data"
    ids = anyio.run(_prepare, data, redis.url, ledger_definition(), 40)
    redis.stop()  # every queued job is gone, and the worker starts against a dead Redis
    workers = Workers.arq(tmp_path, redis.url, LEASE_S)
    worker = workers.start()
    try:
        redis.start()  # empty: only the run store knows the 40 jobs
        anyio.run(until_done, data / "runs.db", 3 * len(ids), workers, 180)
        assert worker.poll() is None  # it survived the outage
    finally:
        workers.stop_all()
    delivered = deliveries(data)
    assert {(run, node) for run, node, _ in delivered} == {
        (run, f"{name}-node") for run in ids for name in ("ledger_qa", "ledger_int", "ledger_hook")
    }
    assert set(delivered.values()) == {1}


def test_a_run_two_workers_took_and_died_on_before_claiming_runs_on_the_next_at_once(
    tmp_path: Path, redis: RedisServer
) -> None:
    """Two workers in a row take the run from ARQ and die before the store's claim: each leaves
    an entry ARQ holds for its whole job timeout. The next worker still runs it at once (under a
    third id ARQ accepts), and only once."""
    data = tmp_path / "data"
    definition = {"nodes": [{"id": "q", "type": "qa_probe", "data": {"name": "q"}}]}
    [run_id] = anyio.run(_prepare, data, redis.url, definition, 1)
    workers = Workers.arq(tmp_path, redis.url, LEASE_S)
    held: set[str] = set()
    try:
        for _ in range(2):
            dying = workers.start("stall")
            held |= anyio.run(_until_taken, redis.url, run_id, held, workers)
            workers.kill(dying)  # between ARQ's hand-over and the claim
        workers.start()
        started = time.monotonic()
        anyio.run(until_done, data / "runs.db", 1, workers, REDELIVERY_BOUND_S)
        elapsed = time.monotonic() - started
        still_held = anyio.run(_taken, redis.url, run_id)
    finally:
        workers.stop_all()
    assert held <= still_held, "the dead workers' entries were waited out, not passed over"
    assert recorded(data / "runs.db") == {run_id: 1}
    log = data / "plugins" / "qa_probe" / "data" / "executions.log"
    assert log.read_text().split() == [str(run_id)]  # no kill while it ran: no duplicate
    print(f"re-delivered after two pre-claim deaths in {elapsed:.1f} s")


async def _taken(redis_url: str, run_id: int) -> set[str]:
    """ARQ's entries of the run that a worker has taken (its in-progress marks)."""
    async with Redis.from_url(redis_url) as client:
        keys = await client.keys(f"arq:in-progress:run-{run_id}*")
    names = {key.decode().removeprefix("arq:in-progress:") for key in keys}
    return {n for n in names if n == f"run-{run_id}" or n.startswith(f"run-{run_id}-")}


async def _until_taken(redis_url: str, run_id: int, before: set[str], workers: Workers) -> set[str]:
    """Wait (bounded) until a worker takes an entry of the run that none took before."""
    with anyio.move_on_after(TAKEN_BOUND_S):
        while not (taken := await _taken(redis_url, run_id)) - before:  # noqa: ASYNC110 - Redis
            await anyio.sleep(0.05)  # another process takes it
        return taken
    pytest.fail(f"no worker took run {run_id} again (held: {sorted(before)})\n{workers.tails()}")


async def _until_running(db_path: Path, run_id: int, workers: Workers) -> None:
    with anyio.move_on_after(120):
        while True:
            with sqlite3.connect(db_path, timeout=30) as db:
                row = db.execute("SELECT state FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
            if row and row[0] == "running":
                return
            await anyio.sleep(0.05)  # another process claims it
    pytest.fail(f"run {run_id} never started\n{workers.tails()}")
