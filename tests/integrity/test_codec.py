"""One codec boundary per plugin: a lone surrogate (valid in a Python str and as a JSON escape,
never in UTF-8) in a live event, a definition, a snapshot or a result fails only what it must,
with a clear error naming the path; the host, the session and the other plugin carry on.
Real plugin processes, a live call and the SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from host import PluginHost
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call
from sdk.protocol import ValidateItem

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LONE = "\udcff"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "codec_plugins" / "lone", plugins / "lone")
    shutil.copytree(FIXTURES / "squat_plugins" / "victim", plugins / "victim")
    return plugins


def definition(mode: str) -> dict[str, Any]:
    nodes = [
        {"id": "l", "type": "lone", "data": {"name": "l", "mode": mode}},
        {"id": "v", "type": "victim", "data": {"name": "v"}},
    ]
    return {"nodes": nodes, "edges": []}


async def live_call(
    plugins: PluginHost, store: SQLiteRunStore, mode: str, *, bad_event: bool
) -> int:
    workflow = definition(mode)
    run_id = await store.create_run(workflow_definition=workflow)
    graph = {"nodes": {n["id"]: n for n in workflow["nodes"]}}
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=graph), plugins=plugins
    ) as sessions:
        if bad_event:
            sessions[0].bridge.emit("user_transcript", 0.0, {"text": f"bad {LONE}"})

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        await run_scripted_call(attach=attach)
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    return run_id


async def test_a_surrogate_fails_only_what_it_must(root: Path, make_host: HostFactory) -> None:
    async with make_host(root) as (plugins, store):
        # A live event: its batch is dropped, the session and the host carry on.
        good = await store.get_run(await live_call(plugins, store, "good", bad_event=True))
        assert good is not None
        assert good.logs["lone"]["events"] > 0
        assert good.logs[LIVE_KEY]["lone"]["status"] == "ok"
        assert good.logs[LIVE_KEY]["lone"]["dropped"] >= 1
        assert good.logs["victim"] == {"real": True}
        # A definition: that plugin's validation fails with the path; the other validates.
        bad, fine = await plugins.registry.validate_nodes(
            [ValidateItem("lone", {"name": LONE}), ValidateItem("victim", {"name": "v"})]
        )
        assert not bad.ok
        assert "$.items[0].data.name" in bad.errors[0].msg
        assert "lone surrogate" in bad.errors[0].msg
        assert fine.ok
        # A snapshot and a result: an error for that plugin at once (no timeout), the
        # other plugin's snapshot and result stored.
        run_id = await live_call(plugins, store, "surrogate", bad_event=False)
        with anyio.fail_after(4):  # well under the plugin's 5 s call deadline
            await run_integrations(run_id, plugins=plugins, store=store)
        run = await store.get_run(run_id)
        assert plugins.get("lone").state.value == "ready"
    assert run is not None
    assert "lone" not in run.logs
    assert "lone surrogate" in str(run.logs["integration_lone"])
    assert run.logs["victim"] == {"real": True}
    assert "l" not in run.annotations or "text" not in run.annotations["l"]
    assert "lone surrogate" in str(run.annotations)
    assert run.annotations["v"] == {"node_id": "v", "delivered": "real"}
