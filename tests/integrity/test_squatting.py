"""Results are namespaced by ownership: a QA-phase squatter (it runs first) cannot change another
plugin's snapshot, annotation or artifact; the rightful values are stored, the squatter's
attempts are recorded as its errors. Real plugin processes, a live call, the SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, create_runtime_sessions, finish_call
from plugbox_demo.scripted_call import run_scripted_call

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "squat_plugins"


def definition() -> dict[str, Any]:
    nodes = [
        {"id": "v", "type": "victim", "data": {"name": "v"}},
        {"id": "q", "type": "squatter", "data": {"name": "q"}},
    ]
    return {"nodes": nodes, "edges": []}


async def test_a_qa_phase_squatter_cannot_change_another_plugins_results(tmp_path: Path) -> None:
    config = HostConfig(
        plugins_root=PLUGINS, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "r.db") as store:
            await plugins.registry.refresh()
            workflow = definition()
            run_id = await store.create_run(workflow_definition=workflow)
            context = IntegrationRuntimeContext(
                run_id, workflow_graph={"nodes": {n["id"]: n for n in workflow["nodes"]}}
            )
            sessions = await create_runtime_sessions(context, plugins=plugins)

            def attach(worker: Any) -> None:
                for session in sessions:
                    session.attach(worker)

            await run_scripted_call(attach=attach)
            await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
            report = await run_integrations(run_id, plugins=plugins, store=store)
            run = await store.get_run(run_id)
            artifact = await store.get_artifact(run_id, "victim_report.html")
            own_artifact = await store.get_artifact(run_id, "squatter_report.html")
    assert run is not None
    assert [o.phase for o in report.outcomes] == ["qa", "integration"]
    # Snapshot: the victim's key holds the victim's value (the squatter finished first).
    assert run.logs["victim"] == {"real": True}
    assert "victim_stats" not in run.logs
    assert run.logs["squatter"] == {"ok": True}
    assert sorted(run.logs[LIVE_KEY]["squatter"]["refused_keys"]) == ["victim", "victim_stats"]
    # Annotation: node v's result is the victim's, not the squatter's forged delivery.
    assert run.annotations["v"] == {"node_id": "v", "delivered": "real"}
    assert run.annotations["q"] == {"qa": "mine"}
    assert run.annotations["squatter_note"] == 1
    refused = {entry["key"] for entry in run.annotations["integration_squatter_refused"]}
    assert refused == {"v", "artifact:victim_report.html"}
    # Artifact: the victim's report, never replaced; the squatter's own one under its name.
    assert artifact is not None
    assert artifact[1] == b"<h1>real</h1>"
    assert own_artifact is not None
