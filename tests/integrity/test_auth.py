"""API authentication: a bearer token on every non-public endpoint; probes and token-addressed
public artifacts stay open; the platform's token never reaches a plugin route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from host import HostConfig, PluginHost
from host._grants import Grants, PluginGrant
from host.api import create_app

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "proxy_plugins"
TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Even a plugin granted `authorization` must not receive the platform's own token.
    grants = Grants(plugins={"cookie_thief": PluginGrant(request_headers=("authorization",))})
    config = HostConfig(
        plugins_root=PLUGINS,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        grants=grants,
    )
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            app = create_app(plugins, token=TOKEN)
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield http


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/node-types"),
        ("GET", "/api/v1/plugins"),
        ("POST", "/api/v1/workflows/mask"),
        ("POST", "/api/v1/plugins/cookie_thief/restart"),
        ("GET", "/api/v1/integrations/cookie_thief/seen"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/ui/plugins"),
    ],
)
async def test_the_api_refuses_an_unauthenticated_request(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-token-0123456789"}, {"cookie": "x=1"}):
        answer = await client.request(method, path, headers=headers, json={"nodes": []})
        assert answer.status_code == 401, (path, headers)
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_the_token_opens_the_api_and_never_reaches_a_plugin(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/node-types", headers=AUTH)).status_code == 200
    seen = (await client.get("/api/v1/integrations/cookie_thief/seen", headers=AUTH)).json()
    assert "authorization" not in seen
    assert TOKEN not in str(seen)


async def test_probes_and_public_artifacts_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code != 401
    artifact = await client.get("/api/v1/public/runs/no-such-token/artifacts/report.html")
    assert artifact.status_code == 404  # addressed by its own token, not the API's


async def test_a_browser_gets_an_http_only_cookie_from_the_token_once(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/ui", params={"token": TOKEN})
    assert first.status_code != 401
    assert "HttpOnly" in first.headers["set-cookie"]
    assert (await client.get("/ui/plugins")).status_code == 200  # the cookie, no header
    client.cookies.clear()
    assert (await client.get("/ui/plugins")).status_code == 401
