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
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
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
            async with open_call(context, plugins=plugins) as sessions:

                def attach(worker: Any) -> None:
                    for session in sessions:
                        session.attach(worker)

                await run_scripted_call(attach=attach)
                await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
            report = await run_integrations(run_id, plugins=plugins, store=store)
            run = await store.get_run(run_id)
            artifact = await store.get_artifact(run_id, "victim", "victim_report.html")
            squatted = await store.get_artifact(run_id, "squatter", "victim_report.html")
            listing = await store.list_artifacts(run_id)
    assert run is not None
    assert [o.phase for o in report.outcomes] == ["qa", "integration"]
    # Snapshot: the victim's keys (its name, and `call_summary` its manifest declares) hold the
    # victim's values though the squatter finished first; a key under the victim's prefix stays
    # refused even when the squatter's manifest declares it.
    assert run.logs["victim"] == {"real": True}
    assert run.logs["call_summary"] == {"by": "victim"}
    assert "victim_stats" not in run.logs
    assert run.logs["squatter"] == {"ok": True}
    assert sorted(run.logs[LIVE_KEY]["squatter"]["refused_keys"]) == [
        "call_summary",
        "victim",
        "victim_stats",
    ]
    assert "refused_keys" not in run.logs[LIVE_KEY]["victim"]
    # Annotation: node v's result is the victim's, not the squatter's forged delivery.
    assert run.annotations["v"] == {"node_id": "v", "delivered": "real"}
    assert run.annotations["q"] == {"qa": "mine"}
    assert run.annotations["squatter_note"] == 1
    refused = {entry["key"] for entry in run.annotations["integration_squatter_refused"]}
    assert refused == {"v", "artifact:../../../integrations/victim/xss"}
    # Artifacts: each plugin's in its own namespace; the squatter's same-named file is its own.
    assert artifact is not None
    assert artifact[1] == b"<h1>real</h1>"
    assert squatted is not None
    assert squatted[1] == b"<h1>forged</h1>"
    assert listing == [
        "squatter/squatter_report.html",
        "squatter/victim_report.html",
        "victim/victim_report.html",
    ]
