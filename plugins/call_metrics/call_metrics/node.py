"""Call metrics plugin: the node model (source of truth) and its derived spec."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from sdk import (
    BaseNodeData,
    GraphConstraints,
    IntegrationNodeRegistration,
    NodeCategory,
    NodeExample,
    build_spec,
    node_spec,
    spec_field,
)

TYPE_NAME = "call_metrics"


@node_spec(
    name=TYPE_NAME,
    display_name="Call metrics",
    description="Measure turn latency, interruptions, tool calls and token usage of each call.",
    category=NodeCategory.integration,
    icon="Activity",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    examples=[NodeExample(name="Default targets", data={"name": "Metrics"})],
)
class CallMetricsNodeData(BaseNodeData):
    """What to measure against."""

    enabled: bool = spec_field(True, description="Collect metrics for calls of this workflow.")
    latency_target_ms: int = spec_field(
        800,
        ge=100,
        le=10_000,
        description="Response latency (user stops -> bot starts) a turn should stay under.",
    )
    report_title: Annotated[str, StringConstraints(min_length=1, max_length=120)] = spec_field(
        "Call report", description="Title of the HTML report."
    )


SPEC = build_spec(CallMetricsNodeData)
NODE = IntegrationNodeRegistration(
    type_name=TYPE_NAME, data_model=CallMetricsNodeData, node_spec=SPEC
)
