"""The run store's jobs on a real SQLite file: instance-owned leases, deaths and parking, retries
with attempt groups, and storage faults (a held lock, a full disk, a corrupt file)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from host.completion import idempotency_key
from host.store import HOST_WRITER, JobState, SQLiteRunStore, StoreError

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


async def _runs(store: SQLiteRunStore, n: int) -> list[int]:
    ids = [await store.create_run(workflow_definition={"nodes": []}) for _ in range(n)]
    for run_id in ids:
        assert await store.enqueue(run_id)
    return ids


async def test_two_stores_on_one_file_never_hold_the_same_job_and_live_leases_stay(
    tmp_path: Path,
) -> None:
    async with (
        SQLiteRunStore(tmp_path / "r.db") as one,
        SQLiteRunStore(tmp_path / "r.db") as two,
    ):
        ids = await _runs(one, 40)
        claimed: list[tuple[str, int]] = []

        async def take(store: SQLiteRunStore, owner: str) -> None:
            while job := await store.claim(owner, lease_s=60, max_deaths=3):
                claimed.append((owner, job.run_id))

        async with anyio.create_task_group() as group:
            for n in range(4):
                group.start_soon(take, one if n % 2 else two, f"owner-{n}")
        assert sorted(run for _, run in claimed) == ids  # each job exactly once
        assert len({owner for owner, _ in claimed}) > 1  # and both stores took some
        # A live lease is never taken over, whoever asks (a second host's recovery included).
        assert await two.claim("a-new-host", lease_s=60, max_deaths=3) is None
        assert await two.claim("a-new-host", lease_s=60, max_deaths=3, run_id=ids[0]) is None
        owner = next(o for o, run in claimed if run == ids[0])
        assert await one.renew(ids[0], owner, lease_s=60)
        assert not await one.renew(ids[0], "someone-else", lease_s=60)


async def test_an_expired_lease_counts_a_death_and_parks_the_job_after_max_deaths(
    tmp_path: Path,
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        [run_id, other] = await _runs(store, 2)
        # lease_s < 0: the lease is expired at once, as if each owner died right after claiming.
        for death in range(3):
            job = await store.claim(f"dies-{death}", lease_s=-1, max_deaths=3, run_id=run_id)
            assert job is not None
            assert job.deaths == death
        assert await store.claim("next", lease_s=60, max_deaths=3, run_id=run_id) is None
        parked = await store.get_job(run_id)
        assert parked is not None
        assert parked.state is JobState.PARKED
        assert parked.error is not None
        assert "died 3 times" in parked.error
        # A parked job does not block the queue ...
        job = await store.claim("next", lease_s=60, max_deaths=3)
        assert job is not None
        assert job.run_id == other
        # ... and `retry` revives it with its deaths forgotten.
        await store.retry(run_id)
        revived = await store.claim("next", lease_s=60, max_deaths=3, run_id=run_id)
        assert revived is not None
        assert revived.deaths == 0
        assert revived.state is JobState.RUNNING


async def test_a_retry_opens_a_new_attempt_group_supersedes_the_failure_and_keeps_history(
    tmp_path: Path,
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        [run_id] = await _runs(store, 1)
        job = await store.claim("w", lease_s=60, max_deaths=3)
        assert job is not None
        await store.record_node_result(run_id, "a", plugin="p", status="done", attempts=1)
        await store.record_node_result(
            run_id, "b", plugin="p", status="failed", attempts=3, error="PluginCrashed: boom"
        )
        failure = {"b": {"status": "failed"}, "integration_p": {"error": "x"}}
        await store.merge_annotations(run_id, failure, writer=HOST_WRITER)
        assert await store.finish(run_id, "w", JobState.PARTIAL, None)
        assert await store.retry(run_id) == ["b"]  # the failed node only, by default
        assert await store.recorded_nodes(run_id) == {"a": "done"}
        assert await store.attempt_groups(run_id) == {"b": 1}
        assert idempotency_key(run_id, "b", 1) != idempotency_key(run_id, "b", 0)
        run = await store.get_run(run_id)
        assert run is not None
        assert "b" not in run.annotations
        assert "integration_p" not in run.annotations
        # The plugin's own result for `b` is accepted now (the host no longer owns the key).
        merged = await store.merge_annotations(run_id, {"b": {"ok": True}}, writer="p")
        assert merged.applied == ["b"]
        await store.record_node_result(run_id, "b", plugin="p", status="done", attempts=1)
        history = [(a.node_id, a.attempt_group, a.status) for a in await store.node_history(run_id)]
        assert history == [("a", 0, "done"), ("b", 0, "failed"), ("b", 1, "done")]
        [summary] = await store.run_summaries(limit=5)  # current groups only: b's retry, done
        assert (summary.run_id, summary.done, summary.failed, summary.recorded) == (run_id, 2, 0, 2)
        job = await store.get_job(run_id)
        assert job is not None
        assert job.state is JobState.PENDING
        assert await store.retry(run_id, plugin="p") == ["a", "b"]


async def test_a_lock_held_far_longer_than_the_busy_wait_is_waited_out(tmp_path: Path) -> None:
    """The old failure: a lock held over SQLite's 30 s busy timeout failed the job for good.
    Here the busy wait per try is 0.2 s and another connection holds the write lock 3 s (15x)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        db = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(3.0)  # the injected fault: the lock is held this long
        db.execute("COMMIT")
        db.close()

    async with SQLiteRunStore(tmp_path / "r.db", busy_wait_s=0.2) as store:
        await _runs(store, 3)
        thread = threading.Thread(target=hold)
        thread.start()
        await anyio.to_thread.run_sync(held.wait)
        with anyio.fail_after(60):
            jobs = [await store.claim("w", lease_s=60, max_deaths=3) for _ in range(3)]
        thread.join()
        assert all(job is not None for job in jobs)
        assert store.faults >= 3  # it backed off instead of failing


async def test_run_summaries_count_current_results_newest_first_and_the_probe_sees_the_lock(
    tmp_path: Path,
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db", busy_wait_s=0.1) as store:
        ids = await _runs(store, 3)
        await store.record_node_result(ids[0], "a", plugin="p", status="failed", attempts=3)
        await store.record_node_result(ids[0], "b", plugin="p", status="done", attempts=1)
        summaries = await store.run_summaries(limit=2)
        assert [s.run_id for s in summaries] == [ids[2], ids[1]]
        oldest = (await store.run_summaries(limit=3))[-1]
        assert (oldest.done, oldest.failed, oldest.recorded) == (1, 1, 2)
        await store.check_writable()
        other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # held: the probe must not report the store writable
        try:
            with pytest.raises(TimeoutError), anyio.fail_after(1.0):
                await store.check_writable()
        finally:
            other.execute("COMMIT")
            other.close()
        await store.check_writable()


async def test_a_corrupt_store_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as caught:
        async with SQLiteRunStore(path):
            pass
    assert str(path) in str(caught.value)
    assert "NOTADB" in str(caught.value) or "not a database" in str(caught.value)
    cli = [sys.executable, "-m", "host.cli", "runs", "list", "--data-dir", str(tmp_path)]
    done = await anyio.run_process(cli, cwd=REPO, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 3, output
    assert str(path) in output.replace("\n", "")
    assert "Traceback" not in output


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def test_a_full_disk_is_waited_out_and_every_job_finishes_once_space_returns(
    tmp_path: Path,
) -> None:
    """The run store on a 1 MiB tmpfs, filled up while the worker runs (root mounts it)."""
    from host import HostConfig, PluginHost
    from host.completion import EmbeddedWorker

    from ._scaleout import GRANTS, PLUGINS, deliveries, ledger_definition

    full = tmp_path / "full"
    if not _mount_tmpfs(full, "1m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    config = HostConfig(
        plugins_root=PLUGINS,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        grants_file=GRANTS,
    )
    try:
        with anyio.fail_after(120):
            async with (
                PluginHost(config) as plugins,
                SQLiteRunStore(full / "runs.db", fault_budget_s=100) as store,
            ):
                ids = [
                    await store.create_run(workflow_definition=ledger_definition())
                    for _ in range(5)
                ]
                for run_id in ids:
                    await store.enqueue(run_id)
                filler = _fill(full / "filler")
                worker = EmbeddedWorker(store, plugins, concurrency=2)
                async with anyio.create_task_group() as group:
                    group.start_soon(worker.run)
                    while store.faults == 0:  # noqa: ASYNC110 - bounded by fail_after
                        await anyio.sleep(0.05)
                    assert worker.finished.total() < len(ids)
                    filler.unlink()  # space returns
                    while worker.finished.total() < len(ids):  # noqa: ASYNC110 - bounded
                        await anyio.sleep(0.05)
                    await worker.drain()
                jobs = [await store.get_job(run_id) for run_id in ids]
                states = {job.state if job else None for job in jobs}
    finally:
        await anyio.run_process(["umount", "-l", str(full)], check=False)
    assert states == {JobState.DONE}
    delivered = deliveries(tmp_path / "data")
    assert len(delivered) == 3 * len(ids)
    assert set(delivered.values()) == {1}


def _fill(path: Path) -> Path:
    """Write `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


async def test_a_deferred_job_stays_pending_and_is_claimable_only_after_its_delay(
    tmp_path: Path,
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        first, second = await _runs(store, 2)
        job = await store.claim("w", lease_s=60, max_deaths=3)
        assert job is not None
        assert job.run_id == first
        assert await store.release(first, "w", delay_s=3600)  # its plugin's circuit is open
        deferred = await store.get_job(first)
        assert deferred is not None
        assert deferred.state is JobState.PENDING
        assert deferred.not_before is not None
        assert deferred.deaths == 0
        assert [j.run_id for j in await store.claimable()] == [second]
        taken = await store.claim("w", lease_s=60, max_deaths=3)
        assert taken is not None
        assert taken.run_id == second
        assert await store.claim("w", lease_s=60, max_deaths=3) is None
        assert await store.claim("w", lease_s=60, max_deaths=3, run_id=first) is None
        assert await store.retry(first) == []  # a retry revives it at once
        again = await store.claim("w", lease_s=60, max_deaths=3)
        assert again is not None
        assert again.run_id == first
        assert again.not_before is None
        assert await store.release(first, "w")  # a drain: claimable at once
        assert [j.run_id for j in await store.claimable()] == [first]
