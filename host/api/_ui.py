"""HTTP layer: the operator's dashboard at `/ui` — server-rendered HTML and a little JS, no build.

Contract: `/ui/plugins` (state, layers, pid, memory, restarts, calls, errors per plugin),
`/ui/plugins/{name}` (limits, grants, recent failed calls with their tracebacks, the log tail and a
restart button that calls `POST /api/v1/plugins/{name}/restart`), `/ui/node-types` (each spec),
`/ui/runs` and `/ui/runs/{id}` (per-node results, attempts, errors with tracebacks, a retry
button), `/ui/calls` (calls in flight, refreshed every 2 s from `/api/v1/plugins`). Every value
shown is HTML-escaped: plugin text is data, never markup. The pages read the same live figures
as the JSON API; nothing here changes state except the two buttons' POSTs.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse

from ..completion import run_integrations
from ..completion._runs import retry_run
from ._observability import plugin_rows
from ._state import ApiState, ApiStateDep

router = APIRouter(prefix="/ui", include_in_schema=False)
RUNS_SHOWN = 50
LOG_LINES = 50
ERRORS_SHOWN = 3  # the newest failed calls, each with its traceback

_STYLE = """
body{font:14px system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
nav{background:#1d2330;padding:10px 20px}nav a{color:#fff;margin-right:18px;text-decoration:none}
main{padding:16px 20px}h1{font-size:20px}table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #d8dce3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff3}pre{background:#fff;border:1px solid #d8dce3;padding:8px;overflow:auto;
max-height:320px;font-size:12px}.ready{color:#177245}.crashed,.circuit_open,.failed{color:#b42318}
.stopped{color:#6b7280}button{padding:4px 12px;cursor:pointer}.muted{color:#6b7280}
"""


def _page(title: str, body: str) -> HTMLResponse:
    links = "".join(
        f'<a href="/ui/{path}">{label}</a>'
        for path, label in (
            ("plugins", "Plugins"),
            ("node-types", "Node types"),
            ("runs", "Runs"),
            ("calls", "Live calls"),
        )
    )
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} · plugbox"
        f"</title><style>{_STYLE}</style></head><body><nav><b style='color:#fff;margin-right:24px'>"
        f"plugbox</b>{links}</nav><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html)


def _table(headers: list[str], rows: list[list[str]], table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mb(value: Any) -> str:
    return f"{value / 2**20:.1f} MB" if isinstance(value, int | float) else "—"


def _text(value: Any) -> str:
    return escape("—" if value is None else str(value))


@router.get("")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/plugins")


@router.get("/plugins")
async def ui_plugins(state: ApiStateDep) -> HTMLResponse:
    rows = []
    for row in plugin_rows(state.plugins):
        name = escape(row["name"])
        rows.append(
            [
                f"<a href='/ui/plugins/{name}'>{name}</a>",
                _text(row["version"]),
                f"<span class='{escape(row['state'])}'>{escape(row['state'])}</span>",
                _text(", ".join(row["sandbox_layers"]) or None),
                _text(row["pid"]),
                _mb(row["rss_bytes"]),
                _text(row["restarts"]),
                _text(row["calls"]),
                _text(row["errors"]),
            ]
        )
    headers = ["plugin", "version", "state", "sandbox", "pid", "memory", "restarts"]
    table = _table([*headers, "calls", "errors"], rows, "plugins")
    broken = "".join(
        f"<li>{escape(str(error))}</li>"
        for error in [*state.plugins.discovery_errors, *state.registry.errors]
    )
    note = "<p class='muted'>stopped is healthy: a plugin starts on its first call.</p>"
    return _page("Plugins", table + note + (f"<h2>Broken</h2><ul>{broken}</ul>" if broken else ""))


@router.get("/plugins/{name}")
async def ui_plugin(name: str, state: ApiStateDep) -> HTMLResponse:
    manifest = state.plugins.manifests.get(name)
    if manifest is None:
        raise HTTPException(404, f"Unknown plugin: {name!r}")
    handle = state.plugins.get(name)
    row = handle.status()
    facts = _facts(row, manifest.limits.model_dump(), _grants(state, name))
    errors = _recent_errors(row)
    logs = "\n".join(_log_line(r) for r in state.plugins.logs.recent(name, LOG_LINES))
    body = (
        _restart_button(name)
        + _table(["", ""], facts)
        + f"<h2>Last errors</h2>{errors or '<p class=muted>none</p>'}"
        + f"<h2>Log tail</h2><pre id='logs'>{escape(logs) or 'no log lines yet'}</pre>"
    )
    return _page(f"Plugin {name}", body)


def _facts(row: dict[str, Any], limits: dict[str, Any], grants: str) -> list[list[str]]:
    """The plugin page's fact table; the ids are the cells the restart button updates."""
    return [
        ["state", f"<span id='state' class='{escape(row['state'])}'>{escape(row['state'])}</span>"],
        ["version", _text(row["version"])],
        ["sandbox layers", _text(", ".join(row["sandbox_layers"]) or None)],
        ["pid (plugin process)", f"<span id='pid'>{_text(row['pid'])}</span>"],
        ["memory", _mb(row["rss_bytes"])],
        ["uptime", _text(row["uptime_s"] and f"{row['uptime_s']:.0f} s")],
        ["starts / restarts", f"{row['starts']} / <span id='restarts'>{row['restarts']}</span>"],
        ["calls / errors", f"{row['calls']} / {row['errors']}"],
        ["limits", f"<pre>{escape(json.dumps(limits, indent=1))}</pre>"],
        ["grants", f"<pre>{escape(grants)}</pre>"],
    ]


def _restart_button(name: str) -> str:
    return (
        f"<p><button id='restart' onclick=\"restartPlugin('{escape(name)}')\">Restart</button> "
        "<span id='restart-result' class='muted'></span></p>"
        "<script>async function restartPlugin(n){const out=document.getElementById("
        "'restart-result');out.textContent='restarting…';const r=await fetch("
        "'/api/v1/plugins/'+encodeURIComponent(n)+'/restart',{method:'POST'});const b=await "
        "r.json();out.textContent=r.ok?('restarted: pid '+b.pid):('failed: '+b.detail);"
        "if(r.ok){document.getElementById('pid').textContent=b.pid;document.getElementById("
        "'restarts').textContent=b.restarts;document.getElementById('state').textContent=b.state}}"
        "</script>"
    )


def _recent_errors(row: dict[str, Any]) -> str:
    """The newest failed calls (with tracebacks), then the last crash; empty when none."""
    errors = "".join(
        f"<h3>{escape(str(e['type']))} in {_text(e['method'])}</h3><p>{escape(e['message'])}</p>"
        + (f"<pre class='traceback'>{escape(e['traceback'])}</pre>" if e.get("traceback") else "")
        for e in list(reversed(row["recent_errors"]))[:ERRORS_SHOWN]
    )
    if row["last_error"]:
        errors += f"<h3>last crash</h3><pre>{escape(row['last_error'])}</pre>"
    return errors


def _grants(state: ApiState, name: str) -> str:
    return json.dumps(state.plugins.grants.for_plugin(name).model_dump(mode="json"), indent=1)


def _log_line(record: dict[str, Any]) -> str:
    name = record.get("plugin_logger") or record.get("logger", "")
    line = f"{record.get('level', '')} {name}: {record.get('msg', '')}"
    return line + ("\n" + str(record["traceback"]).rstrip() if record.get("traceback") else "")


@router.get("/node-types")
async def ui_node_types(state: ApiStateDep) -> HTMLResponse:
    registry = await state.ready()
    parts = []
    for info in registry.packages():
        package = info.name
        for node in info.spec.nodes:
            spec = node.spec
            title = f"{spec.get('display_name', spec.get('name'))} ({spec.get('name')})"
            parts.append(
                f"<details><summary><b>{escape(str(title))}</b> — {escape(package)} · "
                f"{escape(str(spec.get('description', '')))}</summary>"
                f"<pre>{escape(json.dumps(spec, indent=1))}</pre></details>"
            )
    return _page("Node types", "".join(parts) or "<p>no node types loaded</p>")


@router.get("/runs")
async def ui_runs(state: ApiStateDep) -> HTMLResponse:
    if state.store is None:
        return _page("Runs", "<p>no run store attached</p>")

    rows = [
        [
            f"<a href='/ui/runs/{run.run_id}'>{run.run_id}</a>",
            _text(_when(run.created_at)),
            _text(run.done),
            f"<span class='{'failed' if run.failed else ''}'>{run.failed}</span>",
            _text(run.recorded),
        ]
        for run in await state.store.run_summaries(limit=RUNS_SHOWN)
    ]
    return _page("Runs", _table(["run", "created", "done", "failed", "node results"], rows, "runs"))


@router.get("/runs/{run_id}")
async def ui_run(run_id: int, state: ApiStateDep) -> HTMLResponse:
    run = await state.store.get_run(run_id) if state.store is not None else None
    if run is None or state.store is None:
        raise HTTPException(404, f"Unknown run: {run_id}")
    history = await state.store.node_history(run_id)
    rows, details = [], []
    for attempt in history:
        node_id, plugin, status = attempt.node_id, attempt.plugin, attempt.status
        error = (run.annotations.get(node_id) or {}).get("error") or {}
        rows.append(
            [
                _text(node_id),
                _text(plugin),
                f"<span class='{escape(status)}'>{escape(status)}</span>",
                _text(attempt.attempts),
                _text(_when(attempt.recorded_at)),
                _text(error.get("message")),
            ]
        )
        if error.get("traceback"):
            details.append(
                f"<h3>{escape(node_id)} ({escape(plugin)})</h3>"
                f"<pre class='traceback'>{escape(str(error['traceback']))}</pre>"
            )
    retry = (
        f"<form method='post' action='/ui/runs/{run_id}/retry'>"
        "<button id='retry'>Retry failed nodes</button></form>"
    )
    table = _table(["node", "plugin", "status", "attempts", "recorded", "error"], rows, "nodes")
    logs = f"<h2>Logs</h2><pre>{escape(json.dumps(run.logs, indent=1, default=str))}</pre>"
    body = retry + table + ("<h2>Tracebacks</h2>" + "".join(details) if details else "") + logs
    return _page(f"Run {run_id}", body)


@router.post("/runs/{run_id}/retry")
async def ui_retry(run_id: int, state: ApiStateDep) -> RedirectResponse:
    """Run the run's failed nodes again under a new attempt group (`plugbox runs retry`), in
    the background; the failed attempts stay in the history."""
    store = state.store
    if store is None or await store.get_run(run_id) is None:
        raise HTTPException(404, f"Unknown run: {run_id}")
    await retry_run(store, run_id)

    async def again() -> None:
        await run_integrations(run_id, plugins=state.plugins, store=store)

    state.plugins.spawn(again)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.get("/calls")
async def ui_calls(state: ApiStateDep) -> HTMLResponse:
    rows = [
        [_text(r["name"]), _text(r["state"]), _text(r["in_flight"]), _text(r["calls"])]
        for r in plugin_rows(state.plugins)
    ]
    table = _table(["plugin", "state", "calls in flight", "calls so far"], rows, "calls")
    script = (
        "<script>setInterval(async()=>{const r=await fetch('/api/v1/plugins');if(!r.ok)return;"
        "const b=await r.json();const t=document.querySelector('#calls tbody');t.innerHTML='';"
        "for(const p of b.plugins){const tr=document.createElement('tr');for(const v of [p.name,"
        "p.state,p.in_flight,p.calls]){const td=document.createElement('td');td.textContent=v;"
        "tr.appendChild(td)}t.appendChild(tr)}},2000)</script>"
    )
    return _page("Live calls", table + "<p class='muted'>refreshed every 2 s</p>" + script)


def _when(timestamp: Any) -> str | None:
    import time

    if not isinstance(timestamp, int | float):
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
