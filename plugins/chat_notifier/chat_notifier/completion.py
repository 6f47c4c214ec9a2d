"""Chat notifier plugin: the completion handler (integration phase: after QA, before webhooks)."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationCompletionContext

from .client import post_json
from .node import ChatNotifierNodeData, NotifyWhen


def qa_failed(annotations: dict[str, Any]) -> bool:
    """True when any QA result recorded so far did not pass."""
    return any(
        isinstance(value, dict) and value.get("type") == "call_qa" and value.get("passed") is False
        for value in annotations.values()
    )


def summary_text(prefix: str, context: IntegrationCompletionContext) -> str:
    annotations = (context.workflow_run or {}).get("annotations") or {}
    scores = [
        f"QA {value.get('score')}/100"
        for value in annotations.values()
        if isinstance(value, dict) and value.get("type") == "call_qa" and "score" in value
    ]
    parts = [f"{prefix}: run {context.workflow_run_id}", *scores]
    return " | ".join(parts)


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    """Post to every enabled node's channel when its condition holds."""
    annotations = (context.workflow_run or {}).get("annotations") or {}
    results: dict[str, Any] = {}
    for node in nodes:
        node_id = str(node.get("id"))
        data = ChatNotifierNodeData.model_validate(node.get("data", {}))
        if not data.enabled:
            continue
        if data.notify_when is NotifyWhen.qa_failed and not qa_failed(annotations):
            results[node_id] = {"node_id": node_id, "type": "chat_notifier", "posted": False}
            continue
        status = await post_json(
            data.webhook_url,
            {"text": summary_text(data.message_prefix, context)},
            idempotency_key=context.idempotency_keys.get(
                node_id, f"{context.workflow_run_id}:{node_id}"
            ),
        )
        posted = isinstance(status, int) and 200 <= status < 300
        results[node_id] = {
            "node_id": node_id,
            "type": "chat_notifier",
            "posted": posted,
            "status_code": status if isinstance(status, int) else None,
            "error": None if isinstance(status, int) else status,
        }
    return results
