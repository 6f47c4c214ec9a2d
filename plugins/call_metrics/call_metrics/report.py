"""Call metrics plugin: the HTML report and the per-run stats store the route aggregates.

The stats store is a JSON-lines file in the plugin's data directory (the one writable place its
sandbox grants); one line per completed run, appended once per (run, node).
"""

from __future__ import annotations

import html
import json
import os
import statistics
from pathlib import Path
from typing import Any

STATS_FILE = "call_metrics_stats.jsonl"


def data_dir() -> Path:
    return Path(os.environ.get("PLUGBOX_DATA_DIR", "."))


def render_report(title: str, snapshot: dict[str, Any], latency_target_ms: int) -> str:
    """A self-contained HTML page (no scripts, no external assets)."""
    latency = snapshot.get("latency_ms") or {}
    rows = [
        ("Duration (ms)", snapshot.get("duration_ms")),
        ("User turns", snapshot.get("user_turns")),
        ("Bot turns", snapshot.get("bot_turns")),
        ("Interruptions", snapshot.get("interruptions")),
        ("Median latency (ms)", latency.get("median")),
        ("p90 latency (ms)", latency.get("p90")),
        ("Latency target (ms)", latency_target_ms),
        ("Prompt tokens", (snapshot.get("tokens") or {}).get("prompt")),
        ("Completion tokens", (snapshot.get("tokens") or {}).get("completion")),
        ("TTS characters", snapshot.get("tts_characters")),
        ("Tool calls", len(snapshot.get("tool_calls") or [])),
        ("Errors", snapshot.get("errors")),
    ]
    body = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(_show(value))}</td></tr>"
        for label, value in rows
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{body}</table></body></html>"
    )


def _show(value: Any) -> str:
    return "n/a" if value is None else str(value)


def append_stats(record: dict[str, Any]) -> None:
    with (data_dir() / STATS_FILE).open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True) + "\n")


def read_stats() -> list[dict[str, Any]]:
    path = data_dir() / STATS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures across runs: count, latency medians, interruptions, tokens."""
    medians = [r["latency_median_ms"] for r in records if r.get("latency_median_ms") is not None]
    return {
        "runs": len(records),
        "latency_median_ms": round(statistics.median(medians), 1) if medians else None,
        "interruptions_total": sum(int(r.get("interruptions") or 0) for r in records),
        "tokens_total": sum(int(r.get("tokens") or 0) for r in records),
        "over_target_runs": sum(1 for r in records if r.get("over_target")),
    }
