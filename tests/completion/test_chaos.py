"""Chaos: 200 runs of 3 ledger plugins each while the worker is SIGKILLed 4 times (and, on ARQ,
Redis restarts empty once). Nothing is lost; duplicate deliveries are at most one per kill (a
worker's delivery gate: one call between "sent" and "recorded") and every duplicate carries the
first delivery's idempotency key. Counted the way a fault injector would: node results in the run
store, deliveries per key in the plugins' own logs; the window is measured at each kill (nodes
the ledgers show delivered that the store has not recorded)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from host.completion import SQLiteRunStore
from host.completion._arq import enqueue_run_integrations

from ._scaleout import (
    LEDGERS,
    REDIS,
    RedisServer,
    Workers,
    delivered_unrecorded,
    deliveries,
    done_nodes,
    ledger_definition,
    until_done,
)

# xdist: the scale-out tests run one after another on one worker (each starts worker
# processes and their plugins; two at once would make lease takeovers that no kill caused).
pytestmark = pytest.mark.xdist_group("scaleout")

RUNS = 200
KILLS = 4
# Long enough that a survivor stalled by a busy 2-core machine keeps its leases (a takeover of a
# live worker's job would be a duplicate no kill caused), short enough to keep the test quick.
LEASE_S = 4.0


@pytest.fixture(autouse=True)
def warm(tmp_path: Path, share_specs: Callable[[Path], Path]) -> None:
    """The workers' data dir reads the session's spec cache (tests/conftest.py): a worker
    (re)start loads specs from it instead of starting every plugin of the folder for them."""
    share_specs(tmp_path / "data")


def chaos_counts(data: Path, ids: list[int]) -> dict[str, int]:
    """lost and duplicated results, and whether any duplicate changed its key."""
    done = done_nodes(data / "runs.db")
    expected = {(run, f"{name}-node") for run in ids for name in LEDGERS}
    delivered = deliveries(data)
    keys_per_node = Counter((run, node) for run, node, _ in delivered)
    return {
        "lost_results": len(expected - set(done)),
        "recorded_twice": sum(count - 1 for count in done.values()),
        "duplicate_results": sum(count - 1 for count in delivered.values()),
        "undelivered": len(expected - set(keys_per_node)),
        "nodes_with_two_keys": sum(1 for count in keys_per_node.values() if count > 1),
    }


async def _create(data: Path, n: int, redis_url: str | None) -> list[int]:
    async with SQLiteRunStore(data / "runs.db") as store:
        ids = [await store.create_run(workflow_definition=ledger_definition(i)) for i in range(n)]
        for run_id in ids:
            if redis_url is None:
                await store.enqueue(run_id)
            else:
                await enqueue_run_integrations(run_id, redis_url=redis_url, store=store)
    return ids


def _assert_chaos(counts: dict[str, int], window: int, workers: Workers) -> None:
    assert counts["lost_results"] == 0, workers.tails()
    assert counts["undelivered"] == 0
    assert counts["recorded_twice"] == 0  # one result per (run, node, attempt group)
    assert counts["nodes_with_two_keys"] == 0  # every duplicate carries the same key
    assert window <= KILLS, window  # one call (here one node) per killed worker, at most
    assert counts["duplicate_results"] <= KILLS, (counts, window)


def test_embedded_worker_killed_4_times_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = anyio.run(_create, data, RUNS, None)
    workers = Workers.embedded(tmp_path, LEASE_S)
    total = RUNS * len(LEDGERS)
    window = 0
    try:
        worker = workers.start()
        for kill in range(KILLS):
            anyio.run(until_done, data / "runs.db", total * (kill + 1) // (KILLS + 2), workers, 240)
            workers.kill(worker)  # mid-run: jobs in flight, leases held
            window += delivered_unrecorded(data, worker.pid)
            worker = workers.start()  # a new instance; the dead one's leases expire
        anyio.run(until_done, data / "runs.db", total, workers, 240)
    finally:
        workers.stop_all()
    _assert_chaos(chaos_counts(data, ids), window, workers)


@pytest.mark.skipif(REDIS is None, reason="redis-server not installed (tools/system-deps.sh)")
def test_arq_workers_killed_4_times_and_redis_restarted_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    redis = RedisServer(tmp_path)
    redis.start()
    workers = Workers.arq(tmp_path, redis.url, LEASE_S)
    total = RUNS * len(LEDGERS)
    try:
        ids = anyio.run(_create, data, RUNS, redis.url)
        victim, _ = workers.start(), workers.start()
        window = 0
        for kill in range(KILLS):
            anyio.run(until_done, data / "runs.db", total * (kill + 1) // (KILLS + 2), workers, 240)
            workers.kill(victim)
            window += delivered_unrecorded(data, victim.pid)
            if kill == 1:
                redis.stop()  # the queue is gone; only the run store knows what is pending
                redis.start()
            victim = workers.start()
        anyio.run(until_done, data / "runs.db", total, workers, 300)
        assert sum(p.poll() is None for p in workers.processes) == 2  # survivors survived
    finally:
        workers.stop_all()
        redis.stop()
    _assert_chaos(chaos_counts(data, ids), window, workers)
