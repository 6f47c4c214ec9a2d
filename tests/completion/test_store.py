"""The run store's contract, one suite over both backends (`store_url`: a SQLite file, and a
schema of a real PostgreSQL server): instance-owned leases, deaths and parking, retries with
attempt groups, idempotent node results, ownership of keys, runs, tokens and artifacts.
Backend-specific faults are in test_store_sqlite.py and test_store_postgres.py."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from host.completion import idempotency_key
from host.store import (
    HOST_WRITER,
    InvalidArtifactName,
    JobRunning,
    JobState,
    RunStore,
    open_store,
)

pytestmark = pytest.mark.anyio


async def _runs(store: RunStore, n: int) -> list[int]:
    ids = [await store.create_run(workflow_definition={"nodes": []}) for _ in range(n)]
    for run_id in ids:
        assert await store.enqueue(run_id)
    return ids


async def test_two_stores_on_one_database_never_hold_the_same_job_and_live_leases_stay(
    store_url: str, tmp_path: Path
) -> None:
    async with (
        open_store(store_url, data_dir=tmp_path) as one,
        open_store(store_url, data_dir=tmp_path) as two,
    ):
        ids = await _runs(one, 40)
        assert not await two.enqueue(ids[0])  # already queued, in any state
        claimed: list[tuple[str, int]] = []
        all_hold_one = anyio.Event()

        async def take(store: RunStore, owner: str) -> None:
            while job := await store.claim(owner, lease_s=60, max_deaths=3):
                claimed.append((owner, job.run_id))
                if len({o for o, _ in claimed}) == 4:
                    all_hold_one.set()
                await all_hold_one.wait()  # every claimer holds a job before any takes a second

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for n in range(4):
                    group.start_soon(take, one if n % 2 else two, f"owner-{n}")
        assert sorted(run for _, run in claimed) == ids  # each job exactly once
        assert len({owner for owner, _ in claimed}) == 4  # four claimers, on both stores
        # A live lease is never taken over, whoever asks (a second host's recovery included).
        assert await two.claim("a-new-host", lease_s=60, max_deaths=3) is None
        assert await two.claim("a-new-host", lease_s=60, max_deaths=3, run_id=ids[0]) is None
        owner = next(o for o, run in claimed if run == ids[0])
        assert await one.renew(ids[0], owner, lease_s=60)
        assert not await one.renew(ids[0], "someone-else", lease_s=60)
        # Only the owner finishes or releases; a released job is pending again, no death counted.
        assert not await two.finish(ids[0], "someone-else", JobState.DONE, None)
        assert not await two.release(ids[0], "someone-else")
        assert await two.release(ids[0], owner)
        assert await one.claimable() == [await one.get_job(ids[0])]
        again = await one.claim("next", lease_s=60, max_deaths=3, run_id=ids[0])
        assert again is not None
        assert (again.claims, again.deaths, again.lease_owner) == (2, 0, "next")
        assert await two.finish(ids[0], "next", JobState.DONE, None)
        done = await one.get_job(ids[0])
        assert done is not None
        assert (done.state, done.lease_owner, done.lease_expires) == (JobState.DONE, None, None)
        assert done.finished_at is not None
        assert not await one.renew(ids[0], "next", lease_s=60)  # finished: nothing to renew
        assert [job.run_id for job in await two.list_jobs(state=JobState.DONE)] == [ids[0]]
        assert len(await two.list_jobs(state=JobState.RUNNING, limit=100)) == len(ids) - 1
        assert len(await two.list_jobs(limit=5)) == 5


async def test_a_run_queued_elsewhere_gets_its_job_row_when_claimed(
    store_url: str, tmp_path: Path
) -> None:
    """ARQ carries run ids only: a worker claiming a run without a job row creates it."""
    async with open_store(store_url, data_dir=tmp_path) as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        assert await store.get_job(run_id) is None
        job = await store.claim("w", lease_s=60, max_deaths=3, run_id=run_id)
        assert job is not None
        assert (job.run_id, job.state, job.claims) == (run_id, JobState.RUNNING, 1)
        assert job.lease_expires is not None
        assert job.lease_expires > job.enqueued_at


async def test_an_expired_lease_counts_a_death_and_parks_the_job_after_max_deaths(
    store_url: str, tmp_path: Path
) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
        [run_id, other] = await _runs(store, 2)
        # lease_s < 0: the lease is expired at once, as if each owner died right after claiming.
        for death in range(3):
            job = await store.claim(f"dies-{death}", lease_s=-1, max_deaths=3, run_id=run_id)
            assert job is not None
            assert job.deaths == death
            assert [j.run_id for j in await store.claimable(older_than_s=3600)] == [run_id]
        assert await store.claim("next", lease_s=60, max_deaths=3, run_id=run_id) is None
        parked = await store.get_job(run_id)
        assert parked is not None
        assert parked.state is JobState.PARKED
        assert parked.error is not None
        assert "died 3 times" in parked.error
        assert "dies-2" in parked.error
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
        with pytest.raises(JobRunning):  # a live lease: a retry now would race the worker
            await store.retry(run_id)


async def test_a_retry_opens_a_new_attempt_group_supersedes_the_failure_and_keeps_history(
    store_url: str, tmp_path: Path
) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
        [run_id] = await _runs(store, 1)
        job = await store.claim("w", lease_s=60, max_deaths=3)
        assert job is not None
        assert await store.record_node_result(run_id, "a", plugin="p", status="done", attempts=1)
        await store.record_node_result(
            run_id, "b", plugin="p", status="failed", attempts=3, error="PluginCrashed: boom"
        )
        # Idempotent per (run, node, group): a second worker's late result changes nothing.
        assert not await store.record_node_result(
            run_id, "a", plugin="p", status="failed", attempts=9
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
        [_, failed, _] = await store.node_history(run_id)
        assert (failed.plugin, failed.attempts, failed.error) == ("p", 3, "PluginCrashed: boom")
        job = await store.get_job(run_id)
        assert job is not None
        assert job.state is JobState.PENDING
        assert await store.retry(run_id, plugin="p") == ["a", "b"]
        assert await store.attempt_groups(run_id) == {"a": 1, "b": 2}
        # Only nodes with a result in their current group are picked: `a` has none yet.
        assert await store.retry(run_id, nodes=["a"]) == []


async def test_a_key_belongs_to_its_first_writer_and_racing_writers_never_share_one(
    store_url: str, tmp_path: Path
) -> None:
    async with (
        open_store(store_url, data_dir=tmp_path) as one,
        open_store(store_url, data_dir=tmp_path) as two,
    ):
        run_id = await one.create_run(workflow_definition={"nodes": []}, logs={"call_id": "c"})
        report = await one.merge_logs(run_id, {"summary": 1, "call_id": "x"}, writer="qa")
        assert report.applied == ["summary"]
        assert report.refused == [("call_id", HOST_WRITER)]
        again = await two.merge_logs(run_id, {"summary": 2}, writer="qa")  # its own: updated
        assert again.applied == ["summary"]
        stolen = await two.merge_logs(run_id, {"summary": 3}, writer="squatter")
        assert stolen.refused == [("summary", "qa")]
        reserved = await two.merge_annotations(run_id, {"integration_x": 1}, writer="x")
        assert reserved.refused == [("integration_x", HOST_WRITER)]
        # Eight writers race for the same 20 keys through two stores: each key has one owner,
        # whose value it holds; every other writer was told who owns it.
        outcomes: dict[str, list[tuple[str, bool]]] = {}

        async def write(store: RunStore, writer: str) -> None:
            entries = {f"k{i}": writer for i in range(20)}
            merged = await store.merge_annotations(run_id, entries, writer=writer)
            for key in merged.applied:
                outcomes.setdefault(key, []).append((writer, True))
            for key, owner in merged.refused:
                assert owner != writer
                outcomes.setdefault(key, []).append((owner, False))

        async with anyio.create_task_group() as group:
            for n in range(8):
                group.start_soon(write, one if n % 2 else two, f"w{n}")
        run = await one.get_run(run_id)
        assert run is not None
        for key, seen in outcomes.items():
            winners = {writer for writer, applied in seen if applied}
            assert winners == {run.annotations[key]}, (key, seen)
            assert {owner for owner, applied in seen if not applied} <= winners
        assert run.logs == {"call_id": "c", "summary": 2}
        assert list(run.logs) == ["call_id", "summary"]  # first-write order


async def test_a_call_end_snapshot_batch_is_stored_whole_or_not_at_all(
    store_url: str, tmp_path: Path
) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        batches = [("a", {"a_snapshot": {"n": 1}}), ("b", {"b_snapshot": math.nan})]
        with pytest.raises(ValueError, match="JSON"):
            await store.merge_logs_many(run_id, batches)
        run = await store.get_run(run_id)
        assert run is not None
        assert run.logs == {}  # the first writer's entry went with the failed batch
        reports = await store.merge_logs_many(run_id, [("a", {"x": 1}), ("b", {"x": 2, "y": 3})])
        assert [(r.applied, r.refused) for r in reports] == [(["x"], []), (["y"], [("x", "a")])]


async def test_runs_fields_tokens_and_artifacts(store_url: str, tmp_path: Path) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
        definition = {"nodes": [{"id": "n", "type": "t", "data": {"é": "ü"}}], "edges": []}
        run_id = await store.create_run(
            workflow_definition=definition,
            definition_id=7,
            organization_id=3,
            fields={"mode": "voice", "id": "not the id"},
        )
        await store.update_fields(run_id, {"usage_info": {"seconds": 12.5}})
        run = await store.get_run(run_id)
        assert run is not None
        assert run.workflow_definition == definition
        contract = run.as_contract_dict()
        assert contract["id"] == run_id  # the store owns its core keys
        assert (contract["definition_id"], contract["organization_id"]) == (7, 3)
        assert (contract["mode"], contract["usage_info"]) == ("voice", {"seconds": 12.5})
        assert await store.get_run(run_id + 1000) is None
        with pytest.raises(KeyError):
            await store.update_fields(run_id + 1000, {"x": 1})
        token = await store.ensure_public_token(run_id)
        assert await store.ensure_public_token(run_id) == token  # stable once made
        by_token = await store.get_run_by_token(token)
        assert by_token is not None
        assert by_token.id == run_id
        assert await store.get_run_by_token(token[:-1] + "x") is None
        await store.put_artifact(run_id, "qa", "transcript.txt", "text/plain", b"hello")
        await store.put_artifact(run_id, "qa", "audio.wav", "audio/wav", b"\x00\xff" * 1000)
        await store.put_artifact(run_id, "qa", "transcript.txt", "text/markdown", b"# hi")
        await store.put_artifact(run_id, "other", "transcript.txt", "text/plain", b"mine")
        assert await store.list_artifacts(run_id) == [
            "other/transcript.txt",
            "qa/audio.wav",
            "qa/transcript.txt",
        ]
        # Replaced only in its owner's namespace; another plugin's of that name stays apart.
        replaced = await store.get_artifact(run_id, "qa", "transcript.txt")
        assert replaced == ("text/markdown", b"# hi")
        apart = await store.get_artifact(run_id, "other", "transcript.txt")
        assert apart == ("text/plain", b"mine")
        assert await store.get_artifact(run_id, "qa", "audio.wav") == (
            "audio/wav",
            b"\x00\xff" * 1000,
        )
        assert await store.get_artifact(run_id, "qa", "missing") is None
        for owner, name in (("qa", "../x"), ("qa", "a/b"), ("../qa", "x"), ("qa", ".hidden")):
            with pytest.raises(InvalidArtifactName):
                await store.put_artifact(run_id, owner, name, "text/plain", b"x")


async def test_a_deferred_job_stays_pending_and_is_claimable_only_after_its_delay(
    store_url: str, tmp_path: Path
) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
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
        assert taken.run_id == second  # the other job is not held up
        assert await store.claim("w", lease_s=60, max_deaths=3) is None
        assert await store.claim("w", lease_s=60, max_deaths=3, run_id=first) is None
        assert await store.retry(first) == []  # a retry revives it at once
        again = await store.claim("w", lease_s=60, max_deaths=3)
        assert again is not None
        assert again.run_id == first
        assert again.not_before is None
        assert await store.release(first, "w")  # a drain: claimable at once
        assert [j.run_id for j in await store.claimable()] == [first]


async def test_run_summaries_count_current_results_newest_first(
    store_url: str, tmp_path: Path
) -> None:
    async with open_store(store_url, data_dir=tmp_path) as store:
        ids = await _runs(store, 3)
        await store.record_node_result(ids[0], "a", plugin="p", status="failed", attempts=3)
        await store.record_node_result(ids[0], "b", plugin="p", status="done", attempts=1)
        assert [s.run_id for s in await store.run_summaries(limit=2)] == [ids[2], ids[1]]
        oldest = (await store.run_summaries(limit=3))[-1]
        assert (oldest.run_id, oldest.done, oldest.failed, oldest.recorded) == (ids[0], 1, 1, 2)
        await store.check_writable()  # /readyz's probe, on either backend
