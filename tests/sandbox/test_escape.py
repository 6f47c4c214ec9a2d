"""Sandbox: a hostile plugin, run as the host runs it (root in CI), cannot leave bubblewrap.

The escaper plugin (tests/fixtures/escape_plugins) tries, from every channel (import/spec,
validate, runtime.open, on_call_finished, completion, an HTTP route), to gain or use privilege:
remount its venv and /usr read-write, open host files by handle, write outside its data
directory, read its neighbour's data and the run store. It shares its venv with `victim`. Each
channel's report comes from inside; what was written is also checked from outside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from host import HostConfig, PluginHost
from host.api import create_app
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import IntegrationRuntimeContext, finish_call, open_call
from host.sandbox import SandboxPolicy, probe_layers
from plugbox_demo.scripted_call import run_scripted_call

# xdist: one worker: the module's venv is built once; the nonroot test probes the same
# planted paths (escape_plugins).
pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("escape")]
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "escape_plugins"
LAYERS = {layer.name: layer for layer in probe_layers()}
CHANNELS = {"import", "validate", "runtime.open", "on_call_finished", "completion", "http"}
MARK = "escaped-by-escaper"
WORKFLOW = {"nodes": [{"id": "e", "type": "escaper", "data": {"name": "e"}}], "edges": []}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data root for both policies, so the (shared) venv is built once."""
    if not (LAYERS["bwrap"].available and LAYERS["cgroup"].available):
        pytest.skip(f"needs bubblewrap and cgroups: {LAYERS['bwrap']}, {LAYERS['cgroup']}")
    yield tmp_path_factory.mktemp("escape")
    for planted in (PLUGINS / "escaper" / "escaper" / MARK, Path("/usr/lib") / MARK):
        planted.unlink(missing_ok=True)  # only if a test already failed


async def drive_every_channel(plugins: PluginHost, store: SQLiteRunStore) -> dict[str, Any]:
    await plugins.registry.refresh()  # import + spec
    await plugins.registry.validate_node("escaper", {"name": "e"})
    run_id = await store.create_run(workflow_definition=WORKFLOW, logs={})
    graph = {"nodes": {n["id"]: n for n in WORKFLOW["nodes"]}}
    context = IntegrationRuntimeContext(run_id, workflow_graph=graph, user_config={})
    async with open_call(context, plugins=plugins) as sessions:

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        await run_scripted_call(attach=attach)
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    await run_integrations(run_id, plugins=plugins, store=store)
    app = create_app(plugins, store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await app.state.plugbox.ready()
        response = await client.get("/api/v1/integrations/escaper/probe")
    assert response.status_code == 200, response.text
    http_report: dict[str, Any] = response.json()
    return http_report


def reports(data: Path) -> dict[str, dict[str, Any]]:
    lines = (data / "reports.jsonl").read_text().splitlines()
    return {entry["channel"]: entry["report"] for entry in map(json.loads, lines)}


def files_owned_by(uid: int, top: Path, skip: Path) -> list[Path]:
    found = []
    for path in [top, *top.rglob("*")]:
        if skip in path.parents or path == skip:
            continue
        if path.lstat().st_uid == uid:
            found.append(path)
    return found


@pytest.mark.parametrize("policy", [SandboxPolicy.standard, SandboxPolicy.strict])
async def test_no_channel_of_a_hostile_plugin_gains_or_uses_privilege(
    root: Path, policy: SandboxPolicy
) -> None:
    data_root = root / "data"
    victim = data_root / "plugins" / "victim" / "data"
    victim.mkdir(parents=True, exist_ok=True)
    (victim / "secret.txt").write_text("the victim's secret")
    escaper_data = data_root / "plugins" / "escaper" / "data"
    (escaper_data / "reports.jsonl").unlink(missing_ok=True)
    (root / "runs.db").unlink(missing_ok=True)
    config = HostConfig(
        plugins_root=PLUGINS, data_dir=data_root, sandbox_policy=policy, idle_timeout_s=None
    )
    with anyio.fail_after(300):  # the first run builds the shared venv from the package index
        async with PluginHost(config) as plugins, SQLiteRunStore(data_root / "runs.db") as store:
            http_report = await drive_every_channel(plugins, store)
            venv = plugins.venvs.ensure_sync(plugins.manifests["escaper"]).path
            assert venv == plugins.venvs.ensure_sync(plugins.manifests["victim"]).path

    seen = reports(escaper_data)
    assert set(seen) == CHANNELS
    assert seen["http"] == http_report
    for channel, found in seen.items():
        where = f"{policy} {channel}: {found}"
        assert found["init_uid"] not in (0, -1), where
        assert found["cap_eff"] == 0, where
        assert found["cap_bnd"] == 0, where
        assert found["no_new_privs"] == 1, where
        assert found["seccomp"] == 2, where
        assert "ok" not in found["remount"].values(), where
        assert found["open_by_handle_at"] != "ok", where
        assert found["name_to_handle_at"] != "ok", where
        assert found["unshare_user"] != "ok", where
        assert "ok" not in found["writes"].values(), where
        assert "ok" not in found["reads"].values(), where
        assert found["etc_ssl"] == "ok", where
        assert set(found["devices"]) <= {"null", "zero", "urandom", "fd"}, where

    # From outside: nothing planted, nothing owned by the plugin's uid outside its data dir.
    uid = seen["import"]["init_uid"]
    assert escaper_data.stat().st_uid == uid
    assert not list(venv.rglob(f"{MARK}*"))
    assert not list(PLUGINS.rglob(f"{MARK}*"))
    assert not (Path("/usr/lib") / MARK).exists()
    assert os.listdir(victim) == ["secret.txt"]
    assert files_owned_by(uid, root, skip=escaper_data) == []
