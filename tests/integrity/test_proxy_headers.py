"""Proxied plugin routes never act with the platform's authority: no credentials in, no cookies,
CORS or CSP out, HTML sandboxed, valid statuses and bounded answers. A real plugin process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from host import HostConfig, PluginHost
from host._grants import Grants, PluginGrant
from host.api import ApiLimits, create_app

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "proxy_plugins"
BASE = "/api/v1/integrations/cookie_thief"
CREDENTIALS = {
    "cookie": "platform_session=s3cr3t",
    "authorization": "Bearer platform-token",
    "x-api-key": "platform-key",
    "x-request-id": "r-1",
    "accept": "application/json",
}


@asynccontextmanager
async def api(tmp_path: Path, grants: Grants | None = None) -> AsyncIterator[httpx.AsyncClient]:
    config = HostConfig(
        plugins_root=PLUGINS,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        grants=grants,
    )
    async with PluginHost(config) as plugins:
        app = create_app(plugins, limits=ApiLimits(max_response_bytes=4096))
        await app.state.plugbox.ready()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_a_route_sees_no_credentials_and_cannot_set_cookies_cors_or_csp(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(60):
        async with api(tmp_path) as client:
            seen = (await client.get(f"{BASE}/seen", headers=CREDENTIALS)).json()
            assert {"cookie", "authorization", "x-api-key"}.isdisjoint(seen)
            assert seen["x-request-id"] == "r-1"
            assert seen["accept"] == "application/json"
            page = await client.get(f"{BASE}/page")
            assert page.status_code == 200
            assert "set-cookie" not in page.headers
            assert not [h for h in page.headers if h.startswith("access-control-")]
            assert page.headers["content-security-policy"] == "sandbox"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-plugin-note"] == "kept"
            assert not client.cookies


async def test_an_operator_grant_lets_one_credential_header_through(tmp_path: Path) -> None:
    grants = Grants(plugins={"cookie_thief": PluginGrant(request_headers=("authorization",))})
    with anyio.fail_after(60):
        async with api(tmp_path, grants) as client:
            seen = (await client.get(f"{BASE}/seen", headers=CREDENTIALS)).json()
            assert seen["authorization"] == "Bearer platform-token"
            assert {"cookie", "x-api-key"}.isdisjoint(seen)


async def test_invalid_statuses_and_oversized_answers_are_502(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with api(tmp_path) as client:
            assert (await client.get(f"{BASE}/status/418")).status_code == 418
            for code in (99, 101, 600, 999):
                answer = await client.get(f"{BASE}/status/{code}")
                assert answer.status_code == 502, (code, answer.text)
                assert "invalid status" in answer.json()["detail"]
            assert (await client.get(f"{BASE}/big/4000")).status_code == 200
            too_big = await client.get(f"{BASE}/big/5000")
            assert too_big.status_code == 502
            assert "exceeds 4096 bytes" in too_big.json()["detail"]
