"""The API edge: request bodies bounded (413), JSON checked once (400 with the path), and the
secrets a request teaches the scrubber forgotten when it ends. Real plugin processes behind it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from host import PluginHost
from host.api import ApiLimits, create_app

if TYPE_CHECKING:
    from tests.conftest import ConfigFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "api_plugins"
KEY = "key-0123456789abcdef"

Api = tuple[httpx.AsyncClient, PluginHost]


@pytest.fixture
async def api(make_config: ConfigFactory) -> AsyncIterator[Api]:
    config = make_config(PLUGINS)
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            app = create_app(plugins, limits=ApiLimits(max_definition_bytes=64 * 1024))
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, plugins


def definition(name: str = "a", key: str = KEY) -> dict[str, Any]:
    node = {"id": "a", "type": "echo_node", "data": {"name": name, "api_key": key}}
    return {"nodes": [node], "edges": []}


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate is a valid JSON escape


async def test_a_lone_surrogate_is_400_naming_its_path_and_the_next_request_is_served(
    api: Api,
) -> None:
    client, plugins = api
    for route in ("validate", "mask"):
        answer = await client.post(
            f"/api/v1/workflows/{route}",
            content=raw(definition(name="bad \udcff")),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        [problem] = answer.json()["detail"]
        assert problem["loc"] == ["body", "nodes", 0, "data", "name"]
        assert problem["type"] == "invalid_unicode"
    good = await client.post("/api/v1/workflows/validate", json=definition())
    assert good.status_code == 200
    assert {p["field"] for p in good.json()["problems"]} == {None}  # only the graph's edge counts
    assert plugins.get("echo_routes").state.value == "ready"  # the plugin never saw it


async def test_an_over_deep_or_oversized_body_is_refused_unread(api: Api) -> None:
    client, _ = api
    for depth in (300, 10_000):  # past the bound; past Python's own recursion limit
        deep = b"[" * depth + b"1" + b"]" * depth
        too_deep = await client.post(
            "/api/v1/workflows/mask",
            content=b'{"nodes": [], "edges": [], "extra": ' + deep + b"}",
            headers={"content-type": "application/json"},
        )
        assert too_deep.status_code == 400
        assert too_deep.json()["detail"][0]["type"] == "too_deep"
    big = definition(name="n" * (65 * 1024))
    assert (await client.post("/api/v1/workflows/mask", json=big)).status_code == 413


async def test_secrets_a_request_teaches_the_scrubber_are_forgotten_when_it_ends(
    api: Api,
) -> None:
    client, plugins = api
    before = plugins.scrubber.known
    for index in range(50):
        key = f"distinct-secret-{index:06d}"
        assert (
            await client.post("/api/v1/workflows/validate", json=definition(key=key))
        ).is_success
        assert (await client.post("/api/v1/workflows/mask", json=definition(key=key))).is_success
    assert plugins.scrubber.known == before


def test_a_scoped_secret_is_scrubbed_inside_its_scope_only() -> None:
    from sdk.protocol import SecretScrubber

    scrubber = SecretScrubber()
    with scrubber.scoped([KEY]):
        with scrubber.scoped([KEY]):
            assert KEY not in scrubber.scrub_text(f"error: {KEY}")
        assert KEY not in scrubber.scrub_text(f"error: {KEY}")  # still one scope open
    assert scrubber.scrub_text(f"error: {KEY}") == f"error: {KEY}"
    assert scrubber.known == 0
