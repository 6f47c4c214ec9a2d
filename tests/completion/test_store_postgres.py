"""The PostgreSQL run store's own behaviour on a real server: a server restart waited out, bad
credentials and a dead port named at once (never the password), schemas of one database kept
apart and migrated once by concurrent openers, a newer schema refused, the CLI's `--store`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg
import pytest

from host.store import JobState, PostgresRunStore, StoreError, StoreUnavailable, open_store
from host.store._pg_schema import PG_SCHEMA_VERSION

from ._postgres import PostgresServer, free_port

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


async def test_a_server_restart_mid_work_is_waited_out(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    async with PostgresRunStore(postgres_url, fault_budget_s=60) as store:
        ids = [await store.create_run(workflow_definition={"nodes": []}) for _ in range(5)]
        for run_id in ids:
            await store.enqueue(run_id)
        assert await store.claim("w", lease_s=60, max_deaths=3) is not None
        await anyio.to_thread.run_sync(postgres_server.stop)  # every pooled connection dies
        claimed: list[int] = []

        async def keep_claiming() -> None:
            while job := await store.claim("w", lease_s=60, max_deaths=3):
                claimed.append(job.run_id)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(keep_claiming)
                while store.faults == 0:  # noqa: ASYNC110 - bounded by fail_after
                    await anyio.sleep(0.05)
                await anyio.to_thread.run_sync(postgres_server.start)
        assert claimed == ids[1:]
        jobs = [await store.get_job(run_id) for run_id in ids]
        assert {job.state if job else None for job in jobs} == {JobState.RUNNING}


async def test_bad_credentials_and_a_missing_database_fail_at_once_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    port = postgres_server.port
    missing = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/no_such_db"
    with anyio.fail_after(20), pytest.raises(StoreError) as caught:
        async with PostgresRunStore(missing):
            pass
    assert "no_such_db" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)
    assert not isinstance(caught.value, StoreUnavailable)  # persistent: not retried
    dead = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/postgres"
    with anyio.fail_after(30), pytest.raises(StoreUnavailable) as down:
        async with PostgresRunStore(dead, connect_budget_s=1.0):
            pass
    assert f"127.0.0.1:{dead.split(':')[3]}" in str(down.value)
    assert "s3cret-pw" not in str(down.value)
    with pytest.raises(StoreError, match="identifier"):
        PostgresRunStore(f"{postgres_server.url}?schema=x;DROP TABLE runs")


async def test_schemas_of_one_database_are_apart_and_concurrent_openers_migrate_once(
    postgres_server: PostgresServer,
) -> None:
    base = postgres_server.url
    stores = [PostgresRunStore(f"{base}?schema=tenant_a") for _ in range(4)]
    async with anyio.create_task_group() as group:  # four workers starting at once
        for store in stores:
            group.start_soon(store.open)
    other = PostgresRunStore(base, schema="tenant_b")
    await other.open()
    try:
        run_a = await stores[0].create_run(workflow_definition={"tenant": "a"})
        assert await stores[3].get_run(run_a) is not None
        assert await other.get_run(run_a) is None  # tenant_b has its own, empty tables
        assert await other.list_jobs() == []
    finally:
        for store in [*stores, other]:
            await store.aclose()
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        cursor = await conn.execute("SELECT version FROM tenant_a.plugbox_schema_version")
        assert await cursor.fetchall() == [(PG_SCHEMA_VERSION,)]
        cursor = await conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert await cursor.fetchone() == (0,)  # nothing of plugbox's outside its schemas
        await conn.execute("UPDATE tenant_a.plugbox_schema_version SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this plugbox"):
        async with PostgresRunStore(base, schema="tenant_a"):
            pass


async def test_the_cli_reads_the_store_url_from_the_environment(
    postgres_url: str, tmp_path: Path
) -> None:
    async with open_store(postgres_url, data_dir=tmp_path) as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        await store.enqueue(run_id)
    cli = [sys.executable, "-m", "host.cli", "runs", "list", "--json", "--data-dir", str(tmp_path)]
    env = {"PLUGBOX_STORE_URL": postgres_url, "COLUMNS": "200"}
    done = await anyio.run_process(cli, cwd=REPO, check=False, env=_env(env))
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    assert f'"run": {run_id}' in output or f'"run_id": {run_id}' in output, output
    assert "pending" in output
    assert not (tmp_path / "runs.sqlite3").exists()  # nothing went to the embedded file
    bad = postgres_url.replace("/postgres?", "/nowhere?")
    done = await anyio.run_process([*cli, "--store", bad], cwd=REPO, check=False, env=_env(env))
    output = (done.stdout + done.stderr).decode().replace("\n", "")
    assert done.returncode == 3, output
    assert "nowhere" in output
    assert "Traceback" not in output


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


async def test_two_api_servers_on_one_postgres_store_see_and_retry_the_same_runs(
    postgres_url: str, tmp_path: Path, share_specs: Callable[[Path], Path]
) -> None:
    """M API servers: each its own process state and data dir, one run store between them."""
    import httpx

    from host import HostConfig, PluginHost
    from host.api import create_app

    from ._scaleout import GRANTS, PLUGINS

    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for name in ("api-1", "api-2"):
            config = HostConfig(
                plugins_root=PLUGINS,
                data_dir=share_specs(tmp_path / name),  # specs: the session's cache
                use_venvs=False,
                idle_timeout_s=None,
                grants_file=GRANTS,
            )
            plugins = await stack.enter_async_context(PluginHost(config))
            store = await stack.enter_async_context(PostgresRunStore(postgres_url))
            app = create_app(plugins, store)
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://test")
            clients.append(await stack.enter_async_context(client))
        one, two = clients
        run_id = await store.create_run(workflow_definition={"nodes": []})
        await store.enqueue(run_id)
        job = await store.claim("w", lease_s=60, max_deaths=3)
        assert job is not None
        await store.record_node_result(run_id, "n", plugin="p", status="failed", attempts=3)
        assert await store.finish(run_id, "w", JobState.FAILED, None)
        for client in (one, two):
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["store"]["ok"] is True
        listed = (await one.get("/api/v1/runs", params={"state": "failed"})).json()
        assert [r["run_id"] for r in listed["runs"]] == [run_id]
        retried = await two.post(f"/api/v1/runs/{run_id}/retry", json={})
        assert retried.status_code == 200, retried.text
        shown = (await one.get(f"/api/v1/runs/{run_id}")).json()
        assert shown["job"]["state"] == "pending"
        assert [n["attempt_group"] for n in shown["nodes"]] == [0]
