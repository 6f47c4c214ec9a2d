"""HTTP API through httpx against the app, with real plugin subprocesses behind it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from host import PluginHost
from host.api import ApiLimits, create_app
from host.completion import SQLiteRunStore
from sdk.protocol import mask_value

if TYPE_CHECKING:
    from tests.conftest import ConfigFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "api_plugins"
KEY = "key-0123456789abcdef"


@pytest.fixture
async def api(
    tmp_path: Path, make_config: ConfigFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, PluginHost, SQLiteRunStore]]:
    config = make_config(PLUGINS)
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "runs.db") as store:
            app = create_app(plugins, store, limits=ApiLimits(max_body_bytes=64 * 1024))
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, plugins, store


Api = tuple[httpx.AsyncClient, PluginHost, SQLiteRunStore]


def node(node_id: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "echo_node", "data": {"name": node_id, **data}}


async def test_node_types_list_the_plugins_specs_and_a_broken_plugin_under_errors(api: Api) -> None:
    client, plugins, _ = api
    body = (await client.get("/api/v1/node-types")).json()
    assert body["spec_version"] == "1.0.0"
    assert [spec["name"] for spec in body["node_types"]] == ["echo_node"]
    info = plugins.registry.get_package("echo_routes")
    assert info is not None
    assert body["node_types"][0] == info.spec.nodes[0].spec
    assert [error["plugin"] for error in body["errors"]] == ["broken"]
    assert "a dependency is missing" in body["errors"][0]["message"]


async def test_one_node_type_and_an_unknown_one(api: Api) -> None:
    client, _, _ = api
    assert (await client.get("/api/v1/node-types/echo_node")).json()["name"] == "echo_node"
    missing = await client.get("/api/v1/node-types/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Unknown node type: 'nope'"


async def test_validation_lists_every_problem_with_node_field_and_message(api: Api) -> None:
    client, _, _ = api
    definition = {
        "nodes": [
            node("a", api_key="short"),
            node("b", api_key=KEY, mode="advanced"),
            {"id": "c", "type": "zzz", "data": {}},
        ],
        "edges": [{"source": "b", "target": "a"}],
    }
    report = (await client.post("/api/v1/workflows/validate", json=definition)).json()
    problems = {(p["node_id"], p["field"], p["type"]) for p in report["problems"]}
    assert report["valid"] is False
    assert ("a", "api_key", "string_too_short") in problems
    assert ("b", None, "value_error") in problems  # the model validator's conditional rule
    assert ("c", "type", "unknown_type") in problems
    assert ("b", None, "graph_constraint") in problems  # needs exactly one incoming edge


async def test_masking_and_merge_secrets_follow_the_reference_rules(api: Api) -> None:
    client, _, _ = api
    stored = {
        "nodes": [node("a", api_key=KEY, tokens=["tok-aaaa-1111", "tok-bbbb-2222"])],
        "edges": [],
    }
    masked = (await client.post("/api/v1/workflows/mask", json=stored)).json()
    assert masked["nodes"][0]["data"]["api_key"] == mask_value(KEY)
    assert masked["nodes"][0]["data"]["tokens"] == [
        mask_value("tok-aaaa-1111"),
        mask_value("tok-bbbb-2222"),
    ]

    async def merge(incoming: dict[str, Any]) -> httpx.Response:
        return await client.post(
            "/api/v1/workflows/merge-secrets", json={"incoming": incoming, "stored": stored}
        )

    kept = (await merge(masked)).json()
    assert kept["nodes"][0]["data"]["api_key"] == KEY
    assert kept["nodes"][0]["data"]["tokens"] == ["tok-aaaa-1111", "tok-bbbb-2222"]
    new = (await merge({"nodes": [node("a", api_key="key-new-9999999")], "edges": []})).json()
    assert new["nodes"][0]["data"]["api_key"] == "key-new-9999999"
    other = await merge(
        {"nodes": [node("a", api_key=mask_value("key-another-secret"))], "edges": []}
    )
    assert other.status_code == 422
    assert other.json()["detail"][0]["field"] == "api_key"
    fresh = (await merge({"nodes": [node("z", api_key="key-zzzzzzzz")], "edges": []})).json()
    assert fresh["nodes"][0]["data"]["api_key"] == "key-zzzzzzzz"


async def test_a_plugin_route_round_trips_json_query_headers_and_binary(api: Api) -> None:
    client, _, _ = api
    echoed = await client.post(
        "/api/v1/integrations/echo_routes/echo?a=1&b=two",
        json={"x": [1, 2]},
        headers={"x-test": "yes"},
    )
    assert echoed.status_code == 200
    assert echoed.json() == {
        "query": {"a": "1", "b": "two"},
        "header": "yes",
        "json": {"x": [1, 2]},
    }
    payload = bytes(range(256)) * 10
    binary = await client.post("/api/v1/integrations/echo_routes/binary", content=payload)
    assert binary.content == payload[::-1]
    assert binary.headers["x-len"] == str(len(payload))
    assert (await client.get("/api/v1/integrations/echo_routes/items/7")).json() == {
        "item_id": 7,
        "label": "item 7",
    }


async def test_an_oversize_body_gets_413_without_reaching_the_plugin(api: Api) -> None:
    client, plugins, _ = api
    response = await client.post(
        "/api/v1/integrations/echo_routes/binary", content=b"x" * (65 * 1024)
    )
    assert response.status_code == 413
    assert response.json()["plugin"] == "echo_routes"
    assert "http.request" not in plugins.get("echo_routes").stats.methods


async def test_a_crash_inside_a_route_is_502_and_the_next_request_succeeds(api: Api) -> None:
    client, _, _ = api
    crashed = await client.get("/api/v1/integrations/echo_routes/crash")
    assert crashed.status_code == 502
    assert crashed.json()["plugin"] == "echo_routes"
    assert crashed.json()["error"] == "PluginCrashed"
    again = await client.get("/api/v1/integrations/echo_routes/items/1")
    assert again.status_code == 200


async def test_openapi_includes_the_plugin_routes(api: Api) -> None:
    client, _, _ = api
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/integrations/echo_routes/items/{item_id}" in paths
    assert "/api/v1/node-types" in paths


async def test_plugin_health_and_prometheus_metrics(api: Api) -> None:
    client, _, _ = api
    await client.get("/api/v1/integrations/echo_routes/items/1")
    rows = {row["name"]: row for row in (await client.get("/api/v1/plugins")).json()["plugins"]}
    assert rows["echo_routes"]["state"] == "ready"
    assert rows["echo_routes"]["methods"]["http.request"]["calls"] >= 1
    text = (await client.get("/metrics")).text
    assert 'plugbox_plugin_calls_total{method="http.request",plugin="echo_routes"}' in text
    assert 'plugbox_plugin_state{plugin="echo_routes",state="ready"} 1.0' in text


async def test_public_artifacts_are_served_by_token_only(api: Api) -> None:
    client, _, store = api
    run_id = await store.create_run(workflow_definition={"nodes": []})
    token = await store.ensure_public_token(run_id)
    await store.put_artifact(run_id, "echo_routes", "report.html", "text/html", b"<h1>ok</h1>")
    listing = (await client.get(f"/api/v1/public/runs/{token}")).json()
    assert listing["artifacts"] == [
        {
            "name": "echo_routes/report.html",
            "url": f"/api/v1/public/runs/{token}/artifacts/echo_routes/report.html",
        }
    ]
    artifact = await client.get(listing["artifacts"][0]["url"])
    assert artifact.content == b"<h1>ok</h1>"
    assert artifact.headers["content-security-policy"] == "sandbox"
    base = f"/api/v1/public/runs/{token}/artifacts"
    assert (await client.get(f"{base}/report.html")).status_code == 404  # no owner, no file
    assert (
        await client.get(f"/api/v1/public/runs/{token[:-1]}x/artifacts/echo_routes/report.html")
    ).status_code == 404
    assert (await client.get(f"{base}/echo_routes/other.html")).status_code == 404


async def test_schemathesis_finds_no_server_errors(tmp_path: Path, api: Api) -> None:
    import socket

    import uvicorn

    _, plugins, store = api
    app = create_app(plugins, store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(240):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                await anyio.sleep(0.02)
            done = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"http://127.0.0.1:{port}/openapi.json",
                    "--checks",
                    "not_a_server_error",
                    "--max-examples",
                    "15",
                    "--seed",
                    "1",
                    "--phases",
                    "examples,fuzzing",
                ],
                check=False,
                cwd=tmp_path,  # schemathesis keeps a cache in its working directory
            )
        server.should_exit = True
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output[-3000:]
