"""Call metrics plugin: the live runtime session (one per run, fed events by the host)."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationRuntimeContext, IntegrationRuntimeSession
from sdk.protocol import LiveEvent

from .collector import SUBSCRIPTIONS, MetricsCollector
from .node import TYPE_NAME

SNAPSHOT_KEY = "call_metrics"


class CallMetricsSession(IntegrationRuntimeSession):
    """Collects one call's metrics and hands them over as the call-finish snapshot."""

    name = "call_metrics"
    subscriptions = SUBSCRIPTIONS

    def __init__(self, node_ids: list[str]) -> None:
        self.node_ids = node_ids
        self.collector = MetricsCollector()

    def on_event(self, event: LiveEvent) -> None:
        self.collector.add(event)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        snapshot = self.collector.snapshot()
        snapshot["node_ids"] = self.node_ids
        return {SNAPSHOT_KEY: snapshot}


def create_runtime_sessions(context: IntegrationRuntimeContext) -> list[CallMetricsSession]:
    """One session per run, only when an enabled call_metrics node exists."""
    enabled = [str(node.get("id")) for node in context.enabled_nodes(TYPE_NAME)]
    return [CallMetricsSession(enabled)] if enabled else []
