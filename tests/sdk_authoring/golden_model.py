"""A node model exercising every spec feature, for the golden-file test."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel

from sdk import (
    BaseNodeData,
    DisplayOptions,
    GraphConstraints,
    NodeCategory,
    NodeExample,
    PropertyOption,
    PropertyType,
    node_spec,
    spec_field,
)


class Mode(str, Enum):  # noqa: UP042 - a plain str Enum, as plugin authors write them
    fast_track = "fast_track"
    slow_lane = "slow-lane"


class Header(BaseModel):
    key: str = spec_field(..., description="Header name.")
    value: str = spec_field("", description="Header value.")


@node_spec(
    name="golden_node",
    display_name="Golden node",
    description="Exercises every feature of the spec derivation.",
    category=NodeCategory.integration,
    icon="Star",
    version="1.2.0",
    property_order=("mode", "name", "api_key"),
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=1
    ),
    field_overrides={
        "payload": {
            "display_name": "Payload template",
            "description": "Overridden description of the payload.",
            "required": True,
            "spec_default": {"hello": "world"},
        }
    },
    examples=[
        NodeExample(
            name="Minimal",
            description="Only what is required.",
            data={"name": "g", "api_key": "sk-12345678"},
        )
    ],
)
class GoldenNode(BaseNodeData):
    api_key: str = spec_field(
        ...,
        min_length=8,
        max_length=128,
        pattern="^sk-",
        placeholder="sk-...",
        display_name="API key",
        description="The service key.",
    )
    mode: Mode = spec_field(Mode.fast_track, description="How the node behaves.")
    retries: int = spec_field(
        3,
        ge=0,
        le=10,
        spec_default=5,
        description="How often to retry.",
        display_options=DisplayOptions(show={"mode": ["slow-lane"]}),
    )
    ratio: float = spec_field(0.5, gt=0, lt=1, description="A share between zero and one.")
    tags: list[str] = spec_field(
        default_factory=list,
        ui_type=PropertyType.multi_options,
        options=[
            PropertyOption(value="a", label="Alpha", description="The first."),
            PropertyOption(value="b", label="Beta"),
        ],
        description="Labels for the run.",
    )
    headers: list[Header] = spec_field(default_factory=list, description="Extra HTTP headers.")
    payload: dict[str, Any] | None = spec_field(
        None, description="The payload.", editor="code", llm_hint="A JSON object."
    )
    internal: str = spec_field("x", spec_exclude=True, description="Internal bookkeeping.")
