"""Least privilege across the boundary, with two real plugins in one workflow."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from host import PluginHost
from host._grants import Grants, HostGrants
from host.api import create_app
from host.completion import SQLiteRunStore, run_integrations
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call
from sdk.protocol import mask_value

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "privilege_plugins"
KEY_A = "key-of-plugin-a-111111"
KEY_B = "key-of-plugin-b-222222"
PROVIDER = "sk-provider-secret-333333"
STT_KEY = "dg-key-in-a-list-444444"
TTS_KEY = "tts-openai-key-555555"
DB_PASSWORD = "db-password-666666"
# Credentials a deny-list missed: keys in lists, `*_key`, a bare `key`, a password in a URL.
USER_CONFIG = {
    "llm": {"provider": "openai", "model": "gpt-4o", "api_key": PROVIDER},
    "stt": [{"provider": "deepgram", "key": STT_KEY}],
    "tts": {"provider": "eleven", "voice": "rachel", "openai_key": TTS_KEY},
    "memory": {"url": f"postgres://app:{DB_PASSWORD}@db.example.com/app", "dsn": DB_PASSWORD},
    "language": "en",
}


def definition(mode_a: str = "good", mode_b: str = "good") -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "a", "type": "spy_a", "data": {"name": "a", "api_key": KEY_A, "mode": mode_a}},
            {"id": "b", "type": "spy_b", "data": {"name": "b", "api_key": KEY_B, "mode": mode_b}},
        ],
        "edges": [],
    }


@pytest.fixture
async def env(
    tmp_path: Path, make_host: HostFactory
) -> AsyncIterator[tuple[PluginHost, SQLiteRunStore, Path]]:
    grants = Grants(host=HostGrants(user_config_fields=("url",)))  # the operator extends
    async with make_host(PLUGINS, grants=grants) as (plugins, store):
        yield plugins, store, tmp_path


async def live_call(plugins: PluginHost, store: SQLiteRunStore, workflow: dict[str, Any]) -> int:
    run_id = await store.create_run(workflow_definition=workflow, logs={"core": {"duration_s": 12}})
    context = IntegrationRuntimeContext(
        run_id,
        workflow_graph={"nodes": {n["id"]: n for n in workflow["nodes"]}},
        user_config=USER_CONFIG,
    )
    async with open_call(context, plugins=plugins) as sessions:

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        await run_scripted_call(attach=attach)
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    return run_id


def received(tmp_path: Path, plugin: str) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "plugins" / plugin / "data" / "received.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_plugin_receives_only_its_own_secrets_in_clear(
    env: tuple[PluginHost, SQLiteRunStore, Path],
) -> None:
    plugins, store, tmp_path = env
    run_id = await live_call(plugins, store, definition())
    await run_integrations(run_id, plugins=plugins, store=store)
    seen_by_a = json.dumps(received(tmp_path, "spy_a"))
    assert KEY_A in seen_by_a  # its own secret, in clear, in runtime and completion
    assert KEY_B not in seen_by_a
    assert mask_value(KEY_B) in seen_by_a
    for credential in (PROVIDER, STT_KEY, TTS_KEY, DB_PASSWORD):
        assert credential not in seen_by_a
    runtime = next(r for r in received(tmp_path, "spy_a") if r["where"] == "runtime")
    assert runtime["value"]["user_config"] == {
        "llm": {"provider": "openai", "model": "gpt-4o"},
        "stt": [{"provider": "deepgram"}],
        "tts": {"provider": "eleven", "voice": "rachel"},
        "memory": {"url": "postgres://db.example.com/app"},
        "language": "en",
    }
    seen_by_b = json.dumps(received(tmp_path, "spy_b"))
    assert KEY_B in seen_by_b
    assert KEY_A not in seen_by_b


@pytest.mark.parametrize("mode", ["nan", "object", "huge"])
async def test_a_bad_snapshot_is_an_error_entry_for_that_plugin_only(
    env: tuple[PluginHost, SQLiteRunStore, Path], mode: str
) -> None:
    plugins, store, _ = env
    run_id = await live_call(plugins, store, definition(mode_a=mode))
    run = await store.get_run(run_id)
    assert run is not None
    assert "spy_a" not in run.logs
    assert run.logs["integration_spy_a"]["plugin"] == "spy_a"
    assert run.logs["spy_b"]["ok"] is True  # the other plugin's snapshot is intact
    assert run.logs["core"] == {"duration_s": 12}  # and so are the core logs
    assert run.logs[LIVE_KEY]["spy_a"]["status"] == "error"


async def test_overwriting_another_packages_key_or_a_core_key_is_refused_and_reported(
    env: tuple[PluginHost, SQLiteRunStore, Path],
) -> None:
    plugins, store, _ = env
    run_id = await live_call(plugins, store, definition(mode_b="steal"))
    await run_integrations(run_id, plugins=plugins, store=store)
    run = await store.get_run(run_id)
    assert run is not None
    assert run.logs["spy_a"]["ok"] is True
    assert run.logs["core"] == {"duration_s": 12}
    assert run.logs[LIVE_KEY]["spy_a"]["status"] == "ok"
    assert sorted(run.logs[LIVE_KEY]["spy_b"]["refused_keys"]) == ["core", "plugbox_live", "spy_a"]
    assert run.annotations["a"]["node_id"] == "a"  # spy_a's completion result is untouched
    assert run.annotations["b"]["node_id"] == "b"
    refused = {entry["key"] for entry in run.annotations["integration_spy_b_refused"]}
    # Another plugin's key and the run's own keys are refused even when nobody wrote them yet;
    # `plugbox_live` is reserved for the host, whoever comes first.
    assert refused == {"core", "plugbox_live", "spy_a"}
    assert "core" not in run.annotations


async def test_no_secret_appears_in_logs_stderr_errors_metrics_or_annotations(
    env: tuple[PluginHost, SQLiteRunStore, Path], caplog: pytest.LogCaptureFixture
) -> None:
    plugins, store, _ = env
    caplog.set_level(logging.DEBUG)
    run_id = await live_call(plugins, store, definition(mode_b="fail"))
    await run_integrations(run_id, plugins=plugins, store=store)
    run = await store.get_run(run_id)
    assert run is not None
    app = create_app(plugins, store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        await app.state.plugbox.ready()
        responses = [
            (await client.post("/api/v1/workflows/mask", json=definition())).text,
            (await client.post("/api/v1/workflows/validate", json=definition())).text,
            (await client.get("/metrics")).text,
            (await client.get("/api/v1/plugins")).text,
        ]
    haystack = "\n".join(
        [caplog.text, json.dumps(run.annotations), json.dumps(run.logs), *responses]
    )
    assert "finishing with key" in caplog.text  # the plugins' stderr was forwarded...
    assert "refused with key" in json.dumps(run.annotations)  # ...and the error was stored...
    for secret in (KEY_A, KEY_B, PROVIDER):
        assert secret not in haystack  # ...with every secret masked
