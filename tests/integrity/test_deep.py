"""A 10,000-deep snapshot and completion result from one plugin (sent past its SDK's check) is
refused by the host with an error naming the plugin and the path; the other plugins' snapshots
and results of the same call are stored, and the host carries on. Real plugin processes, a
live call and the SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "codec_plugins" / "deep", plugins / "deep")
    shutil.copytree(FIXTURES / "squat_plugins" / "victim", plugins / "victim")
    shutil.copytree(FIXTURES / "codec_plugins" / "lone", plugins / "lone")
    return plugins


async def test_a_10000_deep_result_is_refused_without_losing_other_snapshots(
    root: Path, tmp_path: Path
) -> None:
    config = HostConfig(
        plugins_root=root, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    nodes = [
        {"id": "d", "type": "deep", "data": {"name": "d"}},
        {"id": "v", "type": "victim", "data": {"name": "v"}},
        {"id": "l", "type": "lone", "data": {"name": "l", "mode": "good"}},
    ]
    workflow = {"nodes": nodes, "edges": []}
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "r.db") as store:
            await plugins.registry.refresh()
            run_id = await store.create_run(workflow_definition=workflow)
            async with open_call(
                IntegrationRuntimeContext(run_id, workflow_graph={"nodes": nodes}),
                plugins=plugins,
            ) as sessions:
                assert sorted(s.name for s in sessions) == ["deep", "lone", "victim"]

                def attach(worker: Any) -> None:
                    for session in sessions:
                        session.attach(worker)

                await run_scripted_call(attach=attach)
                with anyio.fail_after(4):  # an error at once, well under the 5 s call deadline
                    await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
                    report = await run_integrations(run_id, plugins=plugins, store=store)
            run = await store.get_run(run_id)
            assert plugins.get("deep").state.value == "ready"  # the process carries on too
    assert run is not None
    # The others' snapshots and results are stored.
    assert run.logs["victim"] == {"real": True}
    assert run.logs["lone"]["events"] > 0
    assert run.annotations["v"] == {"node_id": "v", "delivered": "real"}
    assert run.annotations["l"] == {"text": "fine"}
    # The deep ones are refused, with the plugin and the path.
    assert "deep" not in run.logs
    snapshot_error = run.logs["integration_deep"]
    assert snapshot_error["plugin"] == "deep"
    assert "$.result.snapshot.deep.nested[0][0]" in snapshot_error["message"]
    assert "nested deeper than" in snapshot_error["message"]
    assert run.logs[LIVE_KEY]["deep"]["status"] == "error"
    result_error = run.annotations["d"]["error"]["message"]
    assert "$.result.result.d.nested[0][0]" in result_error
    assert "nested deeper than" in result_error
    outcomes = {o.plugin: o.status for o in report.outcomes}
    assert outcomes == {"deep": "failed", "victim": "done", "lone": "done"}
