"""Webhook plugin: the node model (source of truth) and its derived spec."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from sdk import (
    BaseNodeData,
    GraphConstraints,
    IntegrationNodeRegistration,
    NodeCategory,
    NodeExample,
    PropertyType,
    build_spec,
    node_spec,
    spec_field,
)

TYPE_NAME = "webhook"


@node_spec(
    name=TYPE_NAME,
    display_name="Webhook",
    description="POST the run's summary and annotations to an HTTP endpoint after the call.",
    category=NodeCategory.integration,
    icon="Webhook",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    property_order=("name", "url", "signing_secret", "enabled"),
    examples=[
        NodeExample(
            name="Signed delivery",
            data={
                "name": "Post-call webhook",
                "url": "http://127.0.0.1:9/voice",
                "signing_secret": "whsec-0123456789abcdef",
                "max_attempts": 1,
            },
        )
    ],
)
class WebhookNodeData(BaseNodeData):
    """Where and how to deliver the run summary."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://")] = spec_field(
        ...,
        ui_type=PropertyType.url,
        description="The endpoint that receives the JSON payload (http or https).",
        placeholder="https://hooks.example.com/voice",
    )
    signing_secret: Annotated[str, StringConstraints(min_length=8)] = spec_field(
        ...,
        description="Key for the HMAC-SHA256 signature sent in X-Plugbox-Signature.",
    )
    enabled: bool = spec_field(True, description="Turn delivery off without deleting the node.")
    include_logs: bool = spec_field(
        False, description="Also send the run's call-finish snapshots (logs)."
    )
    max_attempts: int = spec_field(
        4, ge=1, le=10, description="Attempts on 5xx answers, timeouts and connection errors."
    )
    timeout_s: float = spec_field(5.0, gt=0, le=60, description="Per-attempt timeout in seconds.")


SPEC = build_spec(WebhookNodeData)
NODE = IntegrationNodeRegistration(
    type_name=TYPE_NAME,
    data_model=WebhookNodeData,
    node_spec=SPEC,
    sensitive_fields=("signing_secret",),
)
