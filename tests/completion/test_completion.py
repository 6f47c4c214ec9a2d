"""Post-call completion with real plugin processes, the SQLite store and a local HTTP receiver."""

from __future__ import annotations

import signal
import socket
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from fastapi import FastAPI, Request

from host import HostConfig, PluginHost
from host.completion import EmbeddedWorker, SQLiteRunStore, enqueue, job_state, run_integrations

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "completion_plugins"
GRANTS = PLUGINS.parent / "completion_grants.toml"
REPO = Path(__file__).resolve().parents[2]


class Receiver:
    """Counts requests per (path, idempotency key) on 127.0.0.1."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.started = anyio.Event()
        app = FastAPI()

        @app.post("/{path}")
        async def receive(path: str, request: Request) -> dict[str, bool]:
            self.counts[(path, request.headers.get("idempotency-key", ""))] += 1
            if path == "started":
                self.started.set()
            return {"ok": True}

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    listener = Receiver()
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: listener.server.serve(sockets=[listener.socket]))
        yield listener
        listener.server.should_exit = True


@pytest.fixture
def warm(tmp_path: Path, share_specs: Callable[[Path], Path]) -> None:
    """Specs from the session's cache (tests/conftest.py): only the plugins a test calls start,
    not all nine of the folder for their specs. The load-failure test keeps a cold cache."""
    share_specs(tmp_path / "data")


def config(tmp_path: Path, receiver: Receiver, *, slow: str = "0") -> HostConfig:
    return HostConfig(
        plugins_root=PLUGINS,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"RECEIVER_URL": receiver.url, "PLUGBOX_TEST_SLOW": slow},
        grants_file=GRANTS,
    )


def definition(*nodes: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "nodes": [{"id": i, "type": t, "data": {"name": i, "enabled": on}} for i, t, on in nodes],
        "edges": [],
    }


@pytest.mark.usefixtures("warm")
async def test_phases_run_in_order_and_later_phases_see_earlier_annotations(
    tmp_path: Path, receiver: Receiver
) -> None:
    with anyio.fail_after(60):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            run_id = await store.create_run(
                workflow_definition=definition(
                    ("q", "qa_probe", True), ("s", "sender", True), ("off", "sender", False)
                )
            )
            report = await run_integrations(run_id, plugins=plugins, store=store)
            run = await store.get_run(run_id)
    assert run is not None
    assert [o.phase for o in report.outcomes] == ["qa", "integration"]
    assert run.annotations["q"] == {"node_id": "q", "qa": "passed"}
    assert run.annotations["s"]["seen"] == ["q"]  # the QA annotation was visible to the later phase
    assert "off" not in run.annotations  # the disabled node was skipped
    assert sum(count for (path, _), count in receiver.counts.items() if path == "deliver") == 1
    assert report.public_token


@pytest.mark.usefixtures("warm")
async def test_a_plugin_with_only_disabled_nodes_is_called_and_decides_itself(
    tmp_path: Path, receiver: Receiver
) -> None:
    """As in the reference: any node of its types is work; the plugin decides what is enabled."""
    with anyio.fail_after(60):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            run_id = await store.create_run(
                workflow_definition=definition(("off", "sender", False))
            )
            report = await run_integrations(run_id, plugins=plugins, store=store)
            assert plugins.get("sender").stats.methods["completion.run"].calls == 1
            run = await store.get_run(run_id)
    assert report.public_token  # post-call work exists: a node of a completion plugin's type
    assert run is not None
    assert "off" not in run.annotations
    assert not receiver.counts  # the plugin skipped its disabled node: nothing was delivered


@pytest.mark.usefixtures("warm")
async def test_a_handler_crashing_twice_then_succeeding_is_recorded_once_with_its_attempts(
    tmp_path: Path, receiver: Receiver
) -> None:
    with anyio.fail_after(60):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            run_id = await store.create_run(workflow_definition=definition(("f", "flaky", True)))
            report = await run_integrations(run_id, plugins=plugins, store=store)
            again = await run_integrations(run_id, plugins=plugins, store=store)  # a duplicate job
            run = await store.get_run(run_id)
            recorded = await store.recorded_nodes(run_id)
    assert run is not None
    assert report.outcomes[0].status == "done"
    assert report.outcomes[0].attempts == 3
    assert run.annotations["f"] == {"node_id": "f", "attempt": 3}
    assert recorded == {"f": "done"}
    assert again.outcomes[0].status == "skipped"


@pytest.mark.usefixtures("warm")
async def test_a_handler_that_always_hangs_fails_after_retries_while_others_are_recorded(
    tmp_path: Path, receiver: Receiver
) -> None:
    with anyio.fail_after(60):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            run_id = await store.create_run(
                workflow_definition=definition(
                    ("h", "hanger", True), ("q", "qa_probe", True), ("s", "sender", True)
                )
            )
            await run_integrations(run_id, plugins=plugins, store=store)
            run = await store.get_run(run_id)
    assert run is not None
    failed = run.annotations["h"]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "PluginTimeout"
    assert failed["attempts"] == 2
    assert run.annotations["q"]["qa"] == "passed"
    assert run.annotations["s"]["node_id"] == "s"


WORKER = textwrap.dedent(
    """
    import anyio, sys
    from pathlib import Path
    from host import HostConfig, PluginHost
    from host.completion import EmbeddedWorker, SQLiteRunStore

    async def main(data, plugins_root, receiver, slow):
        env = {"RECEIVER_URL": receiver, "PLUGBOX_TEST_SLOW": slow}
        config = HostConfig(plugins_root=Path(plugins_root), data_dir=Path(data) / "data",
                            use_venvs=False, idle_timeout_s=None, extra_env=env,
                            grants_file=Path(plugins_root).parent / "completion_grants.toml")
        async with PluginHost(config) as plugins, SQLiteRunStore(Path(data) / "r.db") as store:
            await EmbeddedWorker(store, plugins, lease_s=2).run_until_empty()

    anyio.run(main, *sys.argv[1:])
    """
)


@pytest.mark.usefixtures("warm")
async def test_a_worker_killed_mid_job_resumes_on_restart_without_duplicate_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        run_id = await store.create_run(
            workflow_definition=definition(("s", "sender", True), ("w", "slow", True))
        )
        await enqueue(store, run_id)
    argv = [sys.executable, "-c", WORKER, str(tmp_path), str(PLUGINS), receiver.url]
    with anyio.fail_after(90):
        first = await anyio.open_process([*argv, "1"], cwd=REPO, stdout=None, stderr=None)
        await receiver.started.wait()  # sender delivered and was recorded; slow is mid-call
        first.send_signal(signal.SIGKILL)
        await first.wait()
        async with SQLiteRunStore(tmp_path / "r.db") as store:
            assert await job_state(store, run_id) == "running"  # orphaned by the dead worker
        second = await anyio.run_process([*argv, "0"], cwd=REPO, stdout=None, stderr=None)
        assert second.returncode == 0
        async with SQLiteRunStore(tmp_path / "r.db") as store:
            assert await job_state(store, run_id) == "done"
            run = await store.get_run(run_id)
    assert run is not None
    deliveries = {key: count for (path, key), count in receiver.counts.items() if path == "deliver"}
    assert len(deliveries) == 2  # one per node
    assert set(deliveries.values()) == {1}  # no idempotency key was delivered twice
    assert run.annotations["w"]["delivered"] is True


async def test_the_store_merges_concurrent_writers_without_loss_and_refuses_foreign_keys(
    tmp_path: Path,
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        async with anyio.create_task_group() as group:
            for writer in range(20):
                for key in range(10):
                    group.start_soon(
                        lambda w=writer, k=key: store.merge_annotations(
                            run_id, {f"{w}-{k}": k}, writer=f"p{w}"
                        )
                    )
        refused = await store.merge_annotations(run_id, {"0-0": "stolen", "new": 1}, writer="p1")
        run = await store.get_run(run_id)
    assert run is not None
    assert len(run.annotations) == 201
    assert run.annotations["0-0"] == 0
    assert refused.refused == [("0-0", "p0")]
    assert refused.applied == ["new"]


async def test_the_store_migrates_an_older_schema_on_open(tmp_path: Path) -> None:
    import sqlite3

    from host.store import SCHEMA_VERSION
    from host.store._schema import MIGRATIONS

    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO runs (organization_id, workflow_definition, created_at) VALUES (1, '{}', 0)"
    )
    db.commit()
    db.close()
    async with SQLiteRunStore(tmp_path / "old.db") as store:
        assert await enqueue(store, 1)  # the jobs table of the later versions exists now
        run = await store.get_run(1)
        assert run is not None
        assert run.fields == {}  # version 3's run fields default to none on an old row
    version = sqlite3.connect(tmp_path / "old.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


@pytest.mark.usefixtures("warm")
async def test_the_embedded_worker_runs_queued_jobs_and_drains(
    tmp_path: Path, receiver: Receiver
) -> None:
    with anyio.fail_after(60):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            worker = EmbeddedWorker(store, plugins, concurrency=2)
            ids = [
                await store.create_run(workflow_definition=definition(("q", "qa_probe", True)))
                for _ in range(5)
            ]
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                for run_id in ids:
                    await worker.submit(run_id)
                while worker.finished.total() < len(ids):  # noqa: ASYNC110 - bounded by fail_after
                    await anyio.sleep(0.01)
                await worker.drain()
            states = {await job_state(store, run_id) for run_id in ids}
    assert states == {"done"}


async def test_a_plugin_that_fails_to_load_fails_its_nodes_and_runs_retry_delivers_them(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A transient import failure for the first 3 jobs: nothing is skipped silently, each run
    whose only node failed is `failed`, and after the cause is gone `runs retry` (same worker,
    same plugin host: plugins are resolved per job) ends every node `done`, delivered once."""
    from host.completion._runs import retry_run, show_run

    broken = tmp_path / "data" / "plugins" / "fragile" / "data" / "broken"
    broken.parent.mkdir(parents=True)
    broken.touch()
    with anyio.fail_after(120):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            worker = EmbeddedWorker(store, plugins)
            ids = [
                await store.create_run(workflow_definition=definition(("f", "fragile", True)))
                for _ in range(3)
            ]
            for run_id in ids:
                await enqueue(store, run_id)
            await worker.run_until_empty()
            assert {await job_state(store, run_id) for run_id in ids} == {"failed"}
            shown = await show_run(store, ids[0])
            [attempt] = shown["nodes"]
            assert attempt["status"] == "failed"
            assert "PluginLoadFailed" in attempt["error"]
            assert "not there yet" in attempt["error"]
            broken.unlink()  # the cause is gone
            for run_id in ids:
                assert (await retry_run(store, run_id))["nodes"] == ["f"]
            await worker.run_until_empty()
            assert {await job_state(store, run_id) for run_id in ids} == {"done"}
            shown = await show_run(store, ids[0])
            runs = [await store.get_run(run_id) for run_id in ids]
    assert [(n["attempt_group"], n["status"]) for n in shown["nodes"]] == [
        (0, "failed"),
        (1, "done"),
    ]
    assert all(run is not None and run.annotations["f"]["delivered"] for run in runs)
    log = tmp_path / "data" / "plugins" / "fragile" / "data" / "deliveries.log"
    delivered = Counter(tuple(line.split()[:2]) for line in log.read_text().splitlines())
    assert delivered == Counter({(str(run_id), "f"): 1 for run_id in ids})


@pytest.mark.usefixtures("warm")
async def test_a_job_meeting_an_open_circuit_is_deferred_and_its_slot_runs_other_jobs(
    tmp_path: Path, receiver: Receiver
) -> None:
    """One worker slot. The first job's plugin has an open circuit: instead of holding the slot
    through the cool-down, the job goes back to `pending` until the circuit half-opens, the
    second job (another plugin) runs meanwhile, and the first then delivers once, not failed."""
    with anyio.fail_after(90):
        async with (
            PluginHost(config(tmp_path, receiver)) as plugins,
            SQLiteRunStore(tmp_path / "r.db") as store,
        ):
            await plugins.registry.refresh()
            victim = plugins.get("ledger_int")
            await victim.aclose()  # down, as after its crashes
            breaker = victim._breaker  # the seam: its circuit opened, as 5 crashes open it
            breaker.cool_down_s = 3.0
            for _ in range(breaker.crash_limit):
                breaker.record_crash()
            assert breaker.is_open
            blocked = await store.create_run(
                workflow_definition=definition(("i", "ledger_int", True))
            )
            free = await store.create_run(
                workflow_definition=definition(("h", "ledger_hook", True))
            )
            worker = EmbeddedWorker(store, plugins, concurrency=1)
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                await worker.submit(blocked)  # claimed first: the oldest job
                await worker.submit(free)
                while worker.finished["done"] < 2:  # noqa: ASYNC110 - bounded by fail_after
                    await anyio.sleep(0.05)
                await worker.drain()
            [late] = await store.node_history(blocked)
            [early] = await store.node_history(free)
            job = await store.get_job(blocked)
    assert worker.finished["pending"] == 1  # deferred once
    assert early.recorded_at < late.recorded_at  # the free job did not wait behind the circuit
    assert (late.status, late.attempts) == ("done", 1)  # not failed, no attempt spent on it
    assert job is not None
    assert (job.state.value, job.claims, job.deaths) == ("done", 2, 0)
    log = tmp_path / "data" / "plugins" / "ledger_int" / "data" / "deliveries.log"
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [[str(blocked), "i"]]
