"""Demo: `plugbox demo` — one scripted call through every bundled plugin, end to end.

Contract: on the embedded defaults (SQLite run store, in-process worker) it builds the plugin venvs
with progress, starts the plugins sandboxed, runs a scripted call through a real pipecat
`PipelineWorker` with the runtime bridge attached, persists the call-finish snapshots, runs
post-call completion (QA, integrations, webhooks) against receivers it starts on 127.0.0.1, and
prints a summary: plugins and sandbox layers, events per plugin, snapshots, annotations,
deliveries, the public report URL (fetched once to prove it), and timings. With `serve=True` it
keeps serving the API until interrupted.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx
import uvicorn
from fastapi import FastAPI, Request
from rich.console import Console
from rich.table import Table

from host import HostConfig, PluginHost
from host._grants import Grants
from host._manifest import discover
from host.api import create_app
from host.cli._permissions import approve_requested
from host.completion import EmbeddedWorker, SQLiteRunStore
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call

from .scripted_call import run_scripted_call

WEBHOOK_SECRET = "whsec-demo-4f9a2c7e1b"
CHAT_PATH = "/hooks/T000/B000/demo-channel-secret"


@dataclass
class Receiver:
    """Counts deliveries per idempotency key and checks webhook signatures."""

    requests: Counter[str] = field(default_factory=Counter)
    signatures_ok: int = 0
    signatures_bad: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhook")
        async def webhook(request: Request) -> dict[str, bool]:
            body = await request.body()
            expected = (
                "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            )
            good = hmac.compare_digest(expected, request.headers.get("x-plugbox-signature", ""))
            self.signatures_ok += good
            self.signatures_bad += not good
            self.requests[f"webhook:{request.headers.get('idempotency-key')}"] += 1
            return {"ok": good}

        @app.post(CHAT_PATH)
        async def chat(request: Request) -> dict[str, bool]:
            self.requests[f"chat:{request.headers.get('idempotency-key')}"] += 1
            return {"ok": True}

        return app


def demo_definition(receiver_url: str) -> dict[str, Any]:
    node = _node
    return {
        "nodes": [
            node(
                "qa",
                "call_qa",
                required_phrases=["thank you for calling"],
                forbidden_phrases=["guarantee"],
            ),
            node("metrics", "call_metrics", latency_target_ms=800),
            node("chat", "chat_notifier", webhook_url=receiver_url + CHAT_PATH),
            node(
                "hook",
                "webhook",
                url=receiver_url + "/webhook",
                signing_secret=WEBHOOK_SECRET,
                include_logs=True,
            ),
            node(
                "hook-off",
                "webhook",
                url=receiver_url + "/webhook",
                signing_secret=WEBHOOK_SECRET,
                enabled=False,
            ),
        ],
        "edges": [],
    }


def demo_grants(config: HostConfig, receiver: str) -> Grants:
    """The demo is the operator of the plugins it runs: it approves what each requests.

    Exactly what `plugbox plugins install --yes` would record, kept in memory (the operator's
    grants file is read, never written), so a fresh clone runs the demo with no manual step —
    except network: a plugin asking for any network is granted only the demo's receiver
    (`receiver`, host:port) through the egress proxy, and its wider request is declined.
    """
    grants = config.load_grants()
    for manifest in discover(config.plugins_root).manifests.values():
        grants = approve_requested(manifest, grants, config.sandbox_policy)
        if manifest.permissions.network is True:
            grant = grants.for_plugin(manifest.name)
            narrowed = grant.model_copy(
                update={"network": (receiver,), "declined": (*grant.declined, "network:*")}
            )
            grants = grants.with_plugin(manifest.name, narrowed)
    return grants


def _node(node_id: str, type_name: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_name, "data": {"name": node_id, **data}}


class _Server:
    """A uvicorn server on 127.0.0.1 and an ephemeral (or given) port, run in a task group."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", port))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.socket])

    def stop(self) -> None:
        self.server.should_exit = True


async def run_demo(
    config: HostConfig, *, console: Console, serve: bool = False, port: int = 0
) -> dict[str, Any]:
    """Run the demo; returns the figures it printed (the tests read them)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    receiver = Receiver()
    async with anyio.create_task_group() as group:
        receiver_server = _Server(receiver.app())
        group.start_soon(receiver_server.serve)
        receiver_address = f"127.0.0.1:{receiver_server.port}"
        config = replace(config, grants=demo_grants(config, receiver_address))
        store_path = config.data_dir / "runs.sqlite3"
        async with (
            PluginHost(config, progress=lambda m: console.print(f"  [dim]{m}[/dim]")) as plugins,
            SQLiteRunStore(store_path) as store,
        ):
            console.rule("[bold]plugbox demo")
            console.print(f"plugins from {config.plugins_root}, data in {config.data_dir}")
            t = time.perf_counter()
            await plugins.install()
            timings["venvs_s"] = time.perf_counter() - t
            t = time.perf_counter()
            await plugins.registry.refresh()
            timings["specs_s"] = time.perf_counter() - t
            figures = await _call_and_complete(plugins, store, receiver_server.url, timings)
            api = _Server(create_app(plugins, store), port)
            group.start_soon(api.serve)
            figures["report"] = await _fetch_report(api.url, figures["token"])
            figures["deliveries"] = dict(receiver.requests)
            figures["signatures"] = (receiver.signatures_ok, receiver.signatures_bad)
            timings["total_s"] = time.perf_counter() - started
            figures["timings"] = timings
            _print_summary(console, plugins, figures, api.url)
            if serve:
                console.print(f"\nserving the API on {api.url} — Ctrl-C to stop")
                await anyio.sleep_forever()
            api.stop()
        receiver_server.stop()
    return figures


async def _call_and_complete(
    plugins: PluginHost, store: SQLiteRunStore, receiver_url: str, timings: dict[str, float]
) -> dict[str, Any]:
    definition = demo_definition(receiver_url)
    run_id = await store.create_run(
        workflow_definition=definition, organization_id=1, definition_id=1
    )
    events = await _scripted_call(plugins, store, _demo_context(run_id, definition), timings)
    t = time.perf_counter()
    worker = EmbeddedWorker(store, plugins)
    await worker.submit(run_id)
    await worker.run_until_empty()
    timings["completion_s"] = time.perf_counter() - t
    run = await store.get_run(run_id)
    assert run is not None
    return {
        "run_id": run_id,
        "token": run.public_token,
        "events": events,
        "live": run.logs.get(LIVE_KEY, {}),
        "snapshots": sorted(k for k in run.logs if k != LIVE_KEY),
        "annotations": run.annotations,
    }


def _demo_context(run_id: int, definition: dict[str, Any]) -> IntegrationRuntimeContext:
    """The call's context, with a provider key in user_config: the plugins must see it masked."""
    return IntegrationRuntimeContext(
        workflow_run_id=run_id,
        workflow_graph={"nodes": {n["id"]: n for n in definition["nodes"]}},
        run_definition=definition,
        user_config={"llm": {"provider": "openai", "api_key": "sk-demo-provider-key-000"}},
    )


async def _scripted_call(
    plugins: PluginHost,
    store: SQLiteRunStore,
    context: IntegrationRuntimeContext,
    timings: dict[str, float],
) -> int:
    """The scripted call with every plugin's session attached, then its snapshots persisted;
    the number of events the bridge emitted."""
    t = time.perf_counter()
    async with open_call(context, plugins=plugins) as sessions:
        timings["sessions_open_s"] = time.perf_counter() - t
        t = time.perf_counter()

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        gathered = await run_scripted_call(attach=attach)
        timings["call_s"] = time.perf_counter() - t
        t = time.perf_counter()
        await finish_call(
            sessions, gathered_context=gathered, store=store, run_id=context.workflow_run_id
        )
    timings["snapshots_s"] = time.perf_counter() - t
    return sessions[0].bridge.emitted if sessions else 0


async def _fetch_report(api_url: str, token: str | None) -> dict[str, Any]:
    url = f"{api_url}/api/v1/public/runs/{token}/artifacts/call_metrics/call_metrics_report.html"
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):  # uvicorn binds before it accepts; bounded retries while it starts
            try:
                response = await client.get(url)
                return {"url": url, "status": response.status_code, "bytes": len(response.content)}
            except httpx.TransportError:
                await anyio.sleep(0.05)
    return {"url": url, "status": None, "bytes": 0}


def _print_summary(
    console: Console, plugins: PluginHost, figures: dict[str, Any], api_url: str
) -> None:
    console.print(_plugins_table(plugins, figures["live"]))
    console.print(f"events emitted by the call: {figures['events']}")
    console.print(f"snapshots persisted in the run's logs: {', '.join(figures['snapshots'])}")
    console.print(_annotations_table(figures["annotations"]))
    ok, bad = figures["signatures"]
    console.print(
        f"deliveries received on 127.0.0.1: {figures['deliveries']} (signatures ok={ok}, bad={bad})"
    )
    egress = ", ".join(
        f"{name} allowed={plugins.egress.allowed[name]} denied={plugins.egress.denied[name]}"
        for name in sorted({*plugins.egress.allowed, *plugins.egress.denied})
    )
    console.print(f"egress through the host's proxy (only the receiver granted): {egress or '-'}")
    report = figures["report"]
    console.print(
        f"public report: {report['url']} -> HTTP {report['status']}, {report['bytes']} bytes"
    )
    timing = ", ".join(f"{k}={v:.2f}" for k, v in figures["timings"].items())
    console.print(f"timings (s): {timing}")
    console.print(f"API while running: {api_url}/api/v1/node-types")


def _plugins_table(plugins: PluginHost, live: dict[str, Any]) -> Table:
    table = Table(title="Plugins")
    for column in ("plugin", "version", "phase", "sandbox layers", "events delivered", "dropped"):
        table.add_column(column)
    for name, manifest in plugins.manifests.items():
        status = plugins.get(name).status()
        delivered = live.get(name, {})
        table.add_row(
            name,
            manifest.version,
            manifest.completion.phase,
            ", ".join(status["sandbox_layers"]) or "-",
            str(delivered.get("delivered", "-")),
            str(delivered.get("dropped", "-")),
        )
    return table


def _annotations_table(annotations: dict[str, Any]) -> Table:
    table = Table(title="Annotations (per node)")
    for column in ("node", "plugin result"):
        table.add_column(column)
    for key, value in sorted(annotations.items()):
        table.add_row(key, _summarise(value))
    return table


def _summarise(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value)[:80]
    keys = (
        "status",
        "score",
        "passed",
        "delivered",
        "posted",
        "attempts",
        "status_codes",
        "report_url",
        "error",
    )
    return ", ".join(f"{k}={value[k]}" for k in keys if k in value)[:160]
