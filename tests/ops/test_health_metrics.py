"""Health, readiness, restart and honest metrics, through the real app and real plugin processes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from host import HostConfig, PluginHost
from host.api import create_app
from host.completion import EmbeddedWorker, SQLiteRunStore, run_integrations
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from sdk.protocol import Calls, PingParams, PingResult

from ._helpers import OPS_PLUGINS, REPO, chatty_params, served

pytestmark = pytest.mark.anyio
RUNTIME_PLUGINS = REPO / "tests" / "fixtures" / "runtime_plugins"
Env = tuple[httpx.AsyncClient, PluginHost, SQLiteRunStore]


@pytest.fixture
async def ops_api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    root = getattr(request, "param", OPS_PLUGINS)
    config = HostConfig(
        plugins_root=root, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(90):
        async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "runs.db") as store:
            app = create_app(plugins, store)
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, plugins, store


async def scrape(client: httpx.AsyncClient) -> dict[str, list[Sample]]:
    text = (await client.get("/metrics")).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(samples: list[Sample], name: str, **labels: str) -> float | None:
    return next(
        (
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ),
        None,
    )


async def test_metrics_parse_and_an_idle_plugin_is_stopped_not_down(ops_api: Env) -> None:
    client, plugins, _ = ops_api
    await plugins.get("chatty").aclose()  # as the idle timeout does; the next call starts it
    families = await scrape(client)
    state = families["plugbox_plugin_state"]
    assert sample(state, "plugbox_plugin_state", plugin="chatty", state="stopped") == 1.0
    assert sample(state, "plugbox_plugin_state", plugin="chatty", state="ready") == 0.0
    assert "plugbox_plugin_up" not in families
    assert families["plugbox_plugin_resident_memory_bytes"] == []  # no process, no figure


async def test_rss_and_pid_are_the_plugins_own_process_and_latency_is_a_histogram(
    ops_api: Env,
) -> None:
    client, plugins, _ = ops_api
    handle = plugins.get("chatty")
    ping: PingResult = await handle.call(Calls.PING, PingParams())
    await handle.call(Calls.COMPLETION_RUN, chatty_params("ok"))
    row = next(r for r in (await client.get("/api/v1/plugins")).json()["plugins"])
    assert row["state"] == "ready"
    assert b"sdk.serve" in cmdline(row["pid"]).split(b"\0")
    if "bwrap" in row["sandbox_layers"]:
        assert row["wrapper_pid"] not in (None, row["pid"])
        assert b"bwrap" in cmdline(row["wrapper_pid"])
    # The plugin's interpreter with pydantic and the SDK loaded: tens of MB, never bwrap's ~2 MB.
    assert row["rss_bytes"] > 15 * 2**20
    assert abs(row["rss_bytes"] - ping.rss_bytes) < 0.5 * ping.rss_bytes  # what it says itself
    families = await scrape(client)
    memory = sample(
        families["plugbox_plugin_resident_memory_bytes"],
        "plugbox_plugin_resident_memory_bytes",
        plugin="chatty",
    )
    assert memory is not None
    assert memory > 15 * 2**20
    latency = families["plugbox_plugin_call_duration_seconds"]
    count = sample(latency, "plugbox_plugin_call_duration_seconds_count", method="completion.run")
    inf = sample(
        latency, "plugbox_plugin_call_duration_seconds_bucket", method="completion.run", le="+Inf"
    )
    assert count == inf == 1.0
    assert sample(families["plugbox_plugin_state"], "plugbox_plugin_state", state="ready") == 1.0


async def test_restart_endpoint_starts_a_new_process(ops_api: Env) -> None:
    client, plugins, _ = ops_api
    await plugins.get("chatty").start()
    before = plugins.get("chatty").status()
    restarted = await client.post("/api/v1/plugins/chatty/restart")
    assert restarted.status_code == 200, restarted.text
    after = restarted.json()
    assert after["state"] == "ready"
    assert after["pid"] != before["pid"]
    assert after["restarts"] == before["restarts"] + 1
    families = await scrape(client)
    assert (
        sample(
            families["plugbox_plugin_restarts"], "plugbox_plugin_restarts_total", plugin="chatty"
        )
        == 1.0
    )
    assert (await client.post("/api/v1/plugins/nobody/restart")).status_code == 404


async def test_healthz_and_readyz_report_each_check(ops_api: Env) -> None:
    client, plugins, store = ops_api
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["store"] == {"ok": True, "detail": "writable"}
    state = client._transport.app.state.plugbox  # type: ignore[attr-defined]
    worker = EmbeddedWorker(store, plugins)
    state.worker = worker
    stopped = await client.get("/readyz")
    assert stopped.status_code == 503
    assert stopped.json()["checks"]["worker"] == {"ok": False, "detail": "stopped"}
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(10):
            while not worker.alive:  # noqa: ASYNC110 - the worker has no started event
                await anyio.sleep(0.01)
        assert (await client.get("/readyz")).status_code == 200
        await worker.drain()
    await store.aclose()
    closed = (await client.get("/readyz")).json()
    assert closed["checks"]["store"]["ok"] is False


async def test_a_failed_completion_keeps_the_plugins_traceback_with_the_node_result(
    ops_api: Env,
) -> None:
    client, plugins, store = ops_api
    nodes = [{"id": "n1", "type": "chatty", "data": {"name": "n1", "action": "raise"}}]
    run_id = await store.create_run(workflow_definition={"nodes": nodes})
    await run_integrations(run_id, plugins=plugins, store=store, sleep=_no_sleep)
    run = await store.get_run(run_id)
    assert run is not None
    error = run.annotations["n1"]["error"]
    assert error["type"] == "RemoteError"
    assert "in _parse_phone" in error["traceback"]
    assert "ValueError" in error["traceback"]
    row = (await client.get("/api/v1/plugins")).json()["plugins"][0]
    assert "in _parse_phone" in row["recent_errors"][-1]["traceback"]
    families = await scrape(client)
    failed = sample(
        families["plugbox_completion_deliveries"],
        "plugbox_completion_deliveries_total",
        plugin="chatty",
        outcome="failed",
    )
    assert failed is not None
    assert failed >= 1.0


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.mark.parametrize("ops_api", [RUNTIME_PLUGINS], indirect=True)
async def test_a_plugin_killed_mid_call_counts_the_events_it_was_handed_as_dropped(
    ops_api: Env,
) -> None:
    client, plugins, store = ops_api
    graph: dict[str, Any] = {
        "nodes": {
            "recorder_all": {"id": "recorder_all", "type": "recorder_all", "data": {"name": "r"}}
        }
    }
    run_id = await store.create_run(workflow_definition={"nodes": []})
    before = await scrape(client)
    dropped_before = (
        sample(
            before["plugbox_live_events_dropped"],
            "plugbox_live_events_dropped_total",
            plugin="recorder_all",
            reason="process_died",
        )
        or 0.0
    )
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=graph), plugins=plugins
    ) as sessions:
        (session,) = sessions
        assert session.queue is not None
        for index in range(40):
            session.bridge.emit("transcript.final", float(index), {"text": f"line {index}"})
        await session.queue.drain(10)  # all 40 are in the plugin's pipe now
        assert session.queue.delivered == 40
        proc = await plugins.get("recorder_all").start()
        proc.process.kill_group(signal.SIGKILL)
        with anyio.fail_after(10):
            await proc.exited.wait()
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    run = await store.get_run(run_id)
    assert run is not None
    assert run.logs[LIVE_KEY]["recorder_all"]["delivered"] == 0
    assert run.logs[LIVE_KEY]["recorder_all"]["dropped"] == 40
    after = await scrape(client)
    dropped = sample(
        after["plugbox_live_events_dropped"],
        "plugbox_live_events_dropped_total",
        plugin="recorder_all",
        reason="process_died",
    )
    assert dropped == dropped_before + 40


async def test_plugins_restart_command_restarts_through_a_running_server(ops_api: Env) -> None:
    _, plugins, store = ops_api
    before = (await plugins.get("chatty").start()) and plugins.get("chatty").plugin_pid
    async with served(plugins, store) as base:
        restart = [sys.executable, "-m", "host.cli", "plugins", "restart", "chatty", "--url", base]
        done = await anyio.run_process(
            restart, check=False, env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        nobody = await anyio.run_process(
            [*restart[:5], "nobody", "--url", base],
            check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert done.returncode == 0, done.stderr.decode()
    after = plugins.get("chatty").plugin_pid
    assert after != before
    assert done.stdout.decode().strip() == f"chatty: ready, pid {after}, restarts 1"
    assert nobody.returncode == 1
    assert "Unknown plugin: 'nobody'" in nobody.stderr.decode()
