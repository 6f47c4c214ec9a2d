"""Packages written only against the in-process platform's import paths, served unmodified.

The fixture packages (`tests/fixtures/compat_plugins`) import nothing of plugbox: they use the
reference's module paths, read the contexts as objects, and run in real plugin subprocesses, through
the real host (live call, completion, HTTP API) where the host is part of the behaviour.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from host import PluginHost
from host._grants import Grants, PluginGrant
from host.api import create_app
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call
from sdk._compat import install_compat_aliases
from sdk.protocol import (
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    Method,
    RuntimeContextWire,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    ValidateItem,
    ValidateParams,
    ValidateResult,
)
from sdk.testing import check_package, run_subprocess, synthetic_call_events

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "compat_plugins"
KEY = "hd_live_1234567890"
MESSAGES = [
    {"role": "system", "content": "You are the desk."},
    {"role": "user", "content": "My order is late."},
    {"role": "assistant", "content": "I have filed a ticket."},
]
# Every name the reference's modules export (read from dograh-hq/dograh at 058c540).
REFERENCE_NAMES = {
    "api.services.integrations": (
        "IntegrationCompletionContext IntegrationNodeRegistration IntegrationPackageSpec "
        "IntegrationRuntimeContext IntegrationRuntimeSession all_node_specs all_packages "
        "all_routers create_runtime_sessions get_node_data_model get_node_registration "
        "get_node_secret_fields get_node_spec has_completion_handlers register_package "
        "run_completion_handlers"
    ),
    "api.services.integrations.base": (
        "IntegrationRuntimeSession IntegrationRuntimeContext IntegrationCompletionContext "
        "RuntimeFactory CompletionHandler IntegrationNodeRegistration IntegrationPackageSpec "
        "BaseNodeData NodeSpec"
    ),
    "api.services.integrations.registry": (
        "register_package all_packages get_package get_node_registration get_node_data_model "
        "get_node_spec get_node_secret_fields all_node_specs all_routers create_runtime_sessions "
        "iter_completion_packages has_completion_handlers run_completion_handlers"
    ),
    "api.services.workflow.node_data": "BaseNodeData PropertyType spec_field",
    "api.services.workflow.node_specs": (
        "SPEC_VERSION DisplayOptions GraphConstraints NodeCategory NodeExample NodeSpec "
        "NumberInputOptions PropertyLayoutOptions PropertyOption PropertyRendererOptions "
        "PropertySpec PropertyType evaluate_display_options build_spec"
    ),
    "api.services.workflow.node_specs._base": (
        "SPEC_VERSION PropertyType NodeCategory DisplayOptions evaluate_display_options "
        "PropertyOption PropertyLayoutOptions NumberInputOptions PropertyRendererOptions "
        "PropertySpec NodeExample GraphConstraints NodeSpec"
    ),
    "api.services.workflow.node_specs.model_spec": (
        "NodeSpecMetadata spec_field node_spec build_spec DisplayOptions GraphConstraints "
        "NodeCategory NodeExample NodeSpec PropertyOption PropertyRendererOptions PropertySpec "
        "PropertyType"
    ),
}


def node(node_id: str, type_name: str = "helpdesk", **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_name, "data": {"name": node_id, **data}}


def desk(node_id: str, *, enabled: bool = True) -> dict[str, Any]:
    return node(node_id, helpdesk_enabled=enabled, helpdesk_api_key=KEY, helpdesk_queue="support")


def test_every_name_the_reference_modules_export_resolves_under_compat() -> None:
    install_compat_aliases()
    missing = [
        f"{module}.{name}"
        for module, names in REFERENCE_NAMES.items()
        for name in names.split()
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []
    registry = importlib.import_module("api.services.integrations.registry")
    assert registry.get_node_spec("no-such-type") is None
    assert registry.get_node_secret_fields("no-such-type") == ()
    base = importlib.import_module("api.services.integrations.base")
    completion = [f.name for f in dataclasses.fields(base.IntegrationCompletionContext)]
    runtime = [f.name for f in dataclasses.fields(base.IntegrationRuntimeContext)]
    assert completion[:6] == [  # the reference's positional order; plugbox's additions after
        "workflow_run_id",
        "workflow_run",
        "workflow_definition",
        "definition_id",
        "organization_id",
        "public_token",
    ]
    assert runtime == [
        "workflow_run_id",
        "workflow_run",
        "workflow_graph",
        "run_definition",
        "user_config",
        "is_realtime",
        "context_messages_provider",
    ]


async def test_the_served_spec_has_the_reference_shape_and_validates_like_the_reference() -> None:
    with anyio.fail_after(30):
        async with run_subprocess("helpdesk", plugin_dir=PLUGINS / "helpdesk", compat=True) as c:
            spec = await c.spec()
            checked: ValidateResult = await c.call(
                Method.VALIDATE,
                ValidateParams(
                    [
                        ValidateItem("helpdesk", {"name": "", "helpdesk_enabled": False, "x": 1}),
                        ValidateItem("helpdesk", {"name": "on", "helpdesk_enabled": True}),
                    ]
                ),
                result_type=ValidateResult,
            )
    ticket, survey = (info.spec for info in spec.nodes)
    assert (ticket["llm_hint"], ticket["docs_url"]) == (
        "Configuration node: never connect it to conversation nodes.",
        "https://docs.example.invalid/helpdesk",
    )
    assert ticket["graph_constraints"]["max_instances"] == 1
    assert survey["graph_constraints"]["min_instances"] is None
    props = {p["name"]: p for p in ticket["properties"]}
    assert [p["name"] for p in ticket["properties"]][:4] == [
        "name",
        "helpdesk_enabled",
        "helpdesk_api_key",
        "helpdesk_queue",
    ]
    assert props["helpdesk_enabled"]["display_name"] == "Helpdesk Enabled"
    assert props["name"]["default"] == "Helpdesk"
    assert props["helpdesk_queue"]["required"] is True
    assert [o["label"] for o in props["channels"]["options"]] == ["Email", "Sms Text"]
    assert [o["label"] for o in props["priority"]["options"]] == ["Low", "Urgent Now"]
    assert [r["name"] for r in props["tag_rules"]["properties"]] == ["keyword", "tag"]
    assert props["minute_rate"]["renderer_options"] == {
        "layout": {"column_span": 6},
        "number_input": {"fractional": True},
    }
    assert [name for name, p in props.items() if "sensitive" in p] == ["helpdesk_api_key"]
    first, second = checked.results
    assert first.ok  # `name: ""` validates: min_length is a spec hint, as in the reference
    assert first.data is not None
    assert (first.data["is_start"], "x" in first.data) == (False, False)
    assert not second.ok  # the model validator: enabled needs a key and a queue


async def test_runtime_sessions_read_graph_run_user_config_and_messages_as_objects() -> None:
    graph = {
        "nodes": [
            desk("d1"),
            desk("d2", enabled=False),
            node("s", "helpdesk_survey", scale=3),
            {"id": "start", "type": "startCall", "data": {"name": "Start", "prompt": "Hi"}},
        ],
        "edges": [{"id": "e", "source": "start", "target": "s", "data": {"label": "go"}}],
    }
    context = RuntimeContextWire(
        workflow_run_id=7,
        workflow_run={"id": 7, "mode": "inbound", "logs": {}},
        workflow_graph=graph,
        run_definition={"version_number": 4},
        user_config={"llm": {"provider": "openai", "model": "gpt-4o"}, "stt": None},
    )
    with anyio.fail_after(30):
        async with run_subprocess("helpdesk", plugin_dir=PLUGINS / "helpdesk", compat=True) as c:
            c.context_messages = MESSAGES
            opened: RuntimeOpenResult = await c.call(
                Method.RUNTIME_OPEN, RuntimeOpenParams("r", context), result_type=RuntimeOpenResult
            )
            await c.notify(Method.RUNTIME_EVENTS, RuntimeEventsParams("r", synthetic_call_events()))
            finished: RuntimeFinishResult = await c.call(
                Method.RUNTIME_FINISH,
                RuntimeFinishParams("r", {"call_disposition": "resolved"}),
                result_type=RuntimeFinishResult,
            )
            only_off = RuntimeContextWire(8, workflow_graph={"nodes": [desk("d2", enabled=False)]})
            idle: RuntimeOpenResult = await c.call(
                Method.RUNTIME_OPEN, RuntimeOpenParams("q", only_off), result_type=RuntimeOpenResult
            )
    assert opened.sessions == ["helpdesk"]
    assert idle.sessions == []  # the package itself decided: its only node is disabled
    assert finished.snapshot == {
        "helpdesk_payload": {
            "nodes": ["d1"],
            "mode": "inbound",
            "agent_version": 4,
            "llm": "openai/gpt-4o",
            "realtime": False,
            "message_count": 3,
            "last_message": "I have filed a ticket.",
            "disposition": "resolved",
            "edges": [["start", "s"]],
        }
    }


async def test_completion_reads_logs_usage_info_recording_and_the_public_token() -> None:
    run = {
        "id": 9,
        "mode": "outbound",
        "logs": {"helpdesk_payload": {"nodes": ["d1"]}},
        "usage_info": {"llm": {"total_tokens": 321}},
        "recording_url": "recordings/9.wav",
    }
    nodes = [desk("d1"), desk("d2", enabled=False), node("s", "helpdesk_survey", scale=10)]
    params = CompletionRunParams(
        nodes, CompletionContextWire(9, run, {"nodes": nodes}, 5, 3, "tok")
    )
    with anyio.fail_after(30):
        async with run_subprocess("helpdesk", plugin_dir=PLUGINS / "helpdesk", compat=True) as c:
            done: CompletionRunResult = await c.call(
                Method.COMPLETION_RUN, params, result_type=CompletionRunResult
            )
    assert done.result == {
        "helpdesk_d1": {
            "status": "filed",
            "queue": "support",
            "priority": "low",
            "recording": "https://voice.example.invalid/api/v1/public/download/workflow/tok/recording",
            "llm_tokens": 321,
            "runtime_nodes": ["d1"],
            "mode": "outbound",
            "definition_id": 3,
            "organization_id": 5,
        },
        "helpdesk_survey_s": {"node_id": "s", "scale": 10},
    }


@pytest.fixture
async def host(make_host: HostFactory) -> AsyncIterator[tuple[PluginHost, SQLiteRunStore]]:
    grants = Grants(
        plugins={
            "helpdesk": PluginGrant(reference_routes=True),
            "deskclone": PluginGrant(reference_routes=True),
        }
    )
    async with make_host(PLUGINS, grants=grants) as env:
        yield env


async def test_a_live_call_and_its_completion_through_the_host(
    host: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = host
    definition = {"nodes": [desk("d1"), desk("d2", enabled=False), node("c", "crashy")]}
    run_id = await store.create_run(
        workflow_definition=definition, definition_id=2, fields={"mode": "inbound"}
    )
    context = IntegrationRuntimeContext(
        workflow_run_id=run_id,
        workflow_run={"id": run_id, "mode": "inbound"},
        workflow_graph=definition,
        run_definition={"version_number": 1},
        user_config={"llm": {"provider": "openai", "model": "gpt-4o"}},
        context_messages_provider=lambda: MESSAGES[:2],
    )
    async with open_call(context, plugins=plugins) as sessions:
        assert [s.name for s in sessions] == ["helpdesk"]
        gathered = await run_scripted_call(
            attach=lambda worker: [s.attach(worker) for s in sessions]
        )  # type: ignore[func-returns-value]
        await finish_call(sessions, gathered_context=gathered, store=store, run_id=run_id)
    usage = {"llm": {"total_tokens": 77}}
    await store.update_fields(run_id, {"usage_info": usage, "recording_url": "rec/1.wav"})
    report = await run_integrations(run_id, plugins=plugins, store=store)
    run = await store.get_run(run_id)
    assert run is not None
    payload = run.logs["helpdesk_payload"]
    assert (payload["message_count"], payload["nodes"]) == (2, ["d1"])
    filed = run.annotations["helpdesk_d1"]
    assert (filed["runtime_nodes"], filed["mode"], filed["llm_tokens"]) == (["d1"], "inbound", 77)
    assert filed["recording"].endswith(f"/{run.public_token}/recording")
    assert "helpdesk_d2" not in run.annotations  # the package skipped its disabled node
    crashy = next(o for o in report.outcomes if o.plugin == "crashy")
    assert (crashy.status, crashy.attempts) == ("failed", 1)  # AttributeError: not retried
    assert run.annotations["integration_crashy"] == {"error": "completion_handler_failed"}
    assert "AttributeError" in run.annotations["c"]["error"]["message"]  # per-node detail too


async def test_routes_are_served_at_the_reference_path_per_grant_and_conflicts_are_refused(
    host: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = host
    app = create_app(plugins, store)
    await app.state.plugbox.ready()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        namespaced = await client.get("/api/v1/integrations/helpdesk/helpdesk/queues")
        contested = await client.get("/api/v1/helpdesk/queues")
        unique = await client.get("/api/v1/helpdesk/clone-only")
        host_route = await client.get("/api/v1/node-types/helpdesk")
    assert namespaced.json() == {"queues": ["support", "billing"]}
    assert contested.status_code == 404  # both granted plugins declare it: served by neither
    assert unique.json() == {"served": "deskclone"}
    assert host_route.json()["name"] == "helpdesk"  # the host's own routes come first


async def test_validation_reports_like_the_reference(
    host: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = host
    app = create_app(plugins, store, core_node_types={"startCall", "endCall"})
    await app.state.plugbox.ready()
    definition = {
        "nodes": [
            {"id": "start", "type": "startCall", "data": {"name": "Start"}},
            desk("d1"),
            desk("d2"),
            node("s", "helpdesk_survey", scale=5),
            {"id": "z", "type": "zzz", "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "s"},
            {"id": "e2", "source": "start", "target": "s"},  # parallel: one adjacency
            {"id": "e3", "source": "start", "target": "d1"},
            {"id": "e4", "source": "start", "target": "gone"},
        ],
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        report = (await client.post("/api/v1/workflows/validate", json=definition)).json()
    found = {(p["kind"], p["node_id"] or p["edge_id"], p["message"]) for p in report["problems"]}
    assert found == {
        ("node", "z", "Unknown node type: 'zzz'"),
        ("edge", "e4", "Edge references missing node"),
        ("node", "d1", "Helpdesk cannot have incoming edges"),
        ("workflow", None, "Workflow can have at most one Helpdesk"),
    }


def test_plugins_check_gives_correct_verdicts_for_reference_style_packages() -> None:
    good = check_package(PLUGINS / "helpdesk")
    assert good.ok
    assert good.status("disabled-node skip") == "passed"  # found `helpdesk_enabled` in the spec
    assert good.status("spec lint") == "warning"  # the spec-only min_length hint is reported
    crashy = check_package(PLUGINS / "crashy")
    assert [e.name for e in crashy.failures()] == ["completion happy path"]
    assert crashy.status("disabled-node skip") == "skipped"
