"""Call metrics plugin: the completion handler publishing the HTML report per run."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationCompletionContext

from .node import CallMetricsNodeData
from .report import append_stats, read_stats, render_report
from .runtime import SNAPSHOT_KEY

REPORT_NAME = "call_metrics_report.html"


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    """Publish the report for each enabled node and record the run in the stats store."""
    logs = (context.workflow_run or {}).get("logs") or {}
    snapshot = logs.get(SNAPSHOT_KEY)
    results: dict[str, Any] = {}
    for node in nodes:
        node_id = str(node.get("id"))
        data = CallMetricsNodeData.model_validate(node.get("data", {}))
        if not data.enabled:
            continue
        if not isinstance(snapshot, dict):
            results[node_id] = {"node_id": node_id, "status": "no_snapshot"}
            continue
        results[node_id] = _publish(node_id, data, snapshot, context)
    return results


def _publish(
    node_id: str,
    data: CallMetricsNodeData,
    snapshot: dict[str, Any],
    context: IntegrationCompletionContext,
) -> dict[str, Any]:
    context.publish_artifact(
        REPORT_NAME,
        render_report(data.report_title, snapshot, data.latency_target_ms).encode(),
        "text/html; charset=utf-8",
    )
    median = (snapshot.get("latency_ms") or {}).get("median")
    over_target = median is not None and median > data.latency_target_ms
    _record_once(context.workflow_run_id, node_id, snapshot, median, over_target)
    url = None
    if context.public_token:
        url = f"/api/v1/public/runs/{context.public_token}/artifacts/call_metrics/{REPORT_NAME}"
    return {
        "node_id": node_id,
        "status": "published",
        "report_url": url,
        "latency_median_ms": median,
        "over_target": over_target,
        "interruptions": snapshot.get("interruptions"),
    }


def _record_once(
    run_id: int, node_id: str, snapshot: dict[str, Any], median: Any, over_target: bool
) -> None:
    """Append the run to the stats store unless a retry already did."""
    if any(r.get("run_id") == run_id and r.get("node_id") == node_id for r in read_stats()):
        return
    tokens = snapshot.get("tokens") or {}
    append_stats(
        {
            "run_id": run_id,
            "node_id": node_id,
            "latency_median_ms": median,
            "over_target": over_target,
            "interruptions": snapshot.get("interruptions") or 0,
            "tokens": int(tokens.get("prompt") or 0) + int(tokens.get("completion") or 0),
        }
    )
