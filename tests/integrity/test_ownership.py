"""Node-type ownership: a type two plugins declare is served by neither until the operator pins it.

Real plugin processes (the shipped `webhook` plugin and a hostile `aaahijack` that sorts first and
declares `webhook` with no secret fields) behind the real API app.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from host import HostConfig, PluginHost
from host._grants import Grants, PluginGrant
from host.api import create_app
from host.client import redact_for_plugin
from host.completion import SQLiteRunStore

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
HIJACK = ROOT / "tests" / "fixtures" / "hijack_plugins" / "aaahijack"
SECRET = "whsec-0123456789abcdef-real"
NETWORK = Grants(plugins={"webhook": PluginGrant(network=True)})


@pytest.fixture
def plugins_root(tmp_path: Path) -> Path:
    root = tmp_path / "plugins"
    shutil.copytree(ROOT / "plugins" / "webhook", root / "webhook", ignore=_no_tests)
    shutil.copytree(HIJACK, root / "aaahijack")
    return root


def _no_tests(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("tests", "__pycache__")]


@asynccontextmanager
async def _api(
    root: Path, data: Path, grants: Grants
) -> AsyncIterator[tuple[httpx.AsyncClient, PluginHost]]:
    config = HostConfig(
        plugins_root=root, data_dir=data, use_venvs=False, idle_timeout_s=None, grants=grants
    )
    async with PluginHost(config) as plugins, SQLiteRunStore(data / "runs.db") as store:
        app = create_app(plugins, store)
        await app.state.plugbox.ready()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, plugins


def definition() -> dict[str, Any]:
    node = {
        "id": "w1",
        "type": "webhook",
        "data": {"name": "hook", "url": "https://hooks.example.com/x", "signing_secret": SECRET},
    }
    return {"nodes": [node], "edges": []}


async def test_a_hijacker_gets_no_node_and_no_secret_and_masking_still_masks(
    plugins_root: Path, tmp_path: Path
) -> None:
    with anyio.fail_after(90):
        async with _api(plugins_root, tmp_path / "data", NETWORK) as (client, plugins):
            registry = plugins.registry
            assert registry.package_for_type("webhook") is None  # served by neither
            assert registry.conflicts() == {"webhook": ["aaahijack", "webhook"]}
            hijack = registry.get_package("aaahijack")
            assert hijack is not None
            assert hijack.type_names == []
            # The hijacker's view of a run: the webhook node's secret masked.
            seen = redact_for_plugin(
                definition(), own_types=hijack.type_names, sensitive=registry.sensitive_fields
            )
            assert SECRET not in str(seen)
            # Masking uses every claimant's secret fields: the hijacker declares none.
            masked = (await client.post("/api/v1/workflows/mask", json=definition())).json()
            assert SECRET not in str(masked)
            assert masked["nodes"][0]["data"]["signing_secret"].endswith(SECRET[-4:])
            # The conflict is shown, naming both plugins, in every listing.
            listing = (await client.get("/api/v1/plugins")).json()
            assert listing["conflicts"] == {"webhook": ["aaahijack", "webhook"]}
            rows = {row["name"]: row for row in listing["plugins"]}
            assert rows["aaahijack"]["unserved_node_types"] == ["webhook"]
            assert rows["webhook"]["node_types"] == []
            types = (await client.get("/api/v1/node-types")).json()
            assert "webhook" not in [spec["name"] for spec in types["node_types"]]
            claim = "'webhook' is claimed"
            named = {e["plugin"] for e in types["errors"] if claim in e["message"]}
            assert named == {"aaahijack", "webhook"}
            # No node reaches either claimant: validation knows no owner for the type.
            outcome = await registry.validate_node("webhook", definition()["nodes"][0]["data"])
            assert [issue.type for issue in outcome.errors] == ["unknown_type"]


async def test_the_operators_pin_gives_the_type_to_its_owner_only(
    plugins_root: Path, tmp_path: Path
) -> None:
    grants = Grants(plugins={"webhook": PluginGrant(network=True, node_types=("webhook",))})
    with anyio.fail_after(90):
        async with _api(plugins_root, tmp_path / "data", grants) as (client, plugins):
            registry = plugins.registry
            assert registry.package_for_type("webhook") == "webhook"
            assert registry.conflicts() == {}
            hijack = registry.get_package("aaahijack")
            assert hijack is not None
            assert hijack.type_names == []
            seen = redact_for_plugin(
                definition(), own_types=hijack.type_names, sensitive=registry.sensitive_fields
            )
            assert SECRET not in str(seen)
            report = (await client.post("/api/v1/workflows/validate", json=definition())).json()
            assert report["valid"] is True, report
            masked = (await client.post("/api/v1/workflows/mask", json=definition())).json()
            assert SECRET not in str(masked)


def test_a_pin_is_recorded_in_the_grants_file(tmp_path: Path) -> None:
    from host._grants import load_grants, save_grants
    from host.cli._permissions import edit_grant

    grant = edit_grant(PluginGrant(reference_routes=True), node_types=["webhook"])
    save_grants(Grants(plugins={"webhook": grant}), tmp_path / "grants.toml")
    loaded = load_grants(tmp_path / "grants.toml")
    assert loaded.type_pins() == {"webhook": ("webhook",)}
    assert loaded.plugins["webhook"].reference_routes is True
