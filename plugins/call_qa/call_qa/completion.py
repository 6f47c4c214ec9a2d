"""Call QA plugin: the completion handler (QA phase: runs before integrations and webhooks)."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationCompletionContext

from .node import CallQANodeData
from .rules import evaluate
from .runtime import SNAPSHOT_KEY


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    """Score the call for every enabled QA node; the result is keyed per node id."""
    logs = (context.workflow_run or {}).get("logs") or {}
    snapshot = logs.get(SNAPSHOT_KEY)
    results: dict[str, Any] = {}
    for node in nodes:
        node_id = str(node.get("id"))
        data = CallQANodeData.model_validate(node.get("data", {}))
        if not data.enabled:
            continue
        if not isinstance(snapshot, dict):
            results[node_id] = {"node_id": node_id, "type": "call_qa", "status": "no_snapshot"}
            continue
        results[node_id] = {"node_id": node_id, "type": "call_qa", **evaluate(data, snapshot)}
    return results
