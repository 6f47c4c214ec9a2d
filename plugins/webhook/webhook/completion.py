"""Webhook plugin: the post-call completion handler (runs in the webhook phase, last)."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationCompletionContext

from .client import deliver
from .node import WebhookNodeData


def build_payload(context: IntegrationCompletionContext, *, include_logs: bool) -> dict[str, Any]:
    """The run summary a receiver gets: ids, public token, annotations so far (and logs)."""
    run = context.workflow_run or {}
    payload: dict[str, Any] = {
        "workflow_run_id": context.workflow_run_id,
        "definition_id": context.definition_id,
        "organization_id": context.organization_id,
        "public_token": context.public_token,
        "annotations": run.get("annotations") or {},
    }
    if include_logs:
        payload["logs"] = run.get("logs") or {}
    return payload


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    """Deliver to every enabled webhook node; the result is keyed per node id."""
    results: dict[str, Any] = {}
    for node in nodes:
        node_id = str(node.get("id"))
        data = WebhookNodeData.model_validate(node.get("data", {}))
        if not data.enabled:
            continue
        delivery = await deliver(
            data.url,
            build_payload(context, include_logs=data.include_logs),
            secret=data.signing_secret,
            idempotency_key=context.idempotency_keys.get(
                node_id, f"{context.workflow_run_id}:{node_id}"
            ),
            max_attempts=data.max_attempts,
            timeout_s=data.timeout_s,
        )
        results[node_id] = {
            "node_id": node_id,
            "type": "webhook",
            "delivered": delivery.delivered,
            "attempts": delivery.attempts,
            "status_codes": delivery.status_codes,
            "error": delivery.error,
        }
    return results
