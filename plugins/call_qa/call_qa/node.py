"""Call QA plugin: the node model (source of truth) and its derived spec."""

from __future__ import annotations

from pydantic import model_validator

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

TYPE_NAME = "call_qa"


@node_spec(
    name=TYPE_NAME,
    display_name="Call QA",
    description="Score each call against phrase, silence and interruption rules after it ends.",
    category=NodeCategory.integration,
    icon="ClipboardCheck",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    examples=[
        NodeExample(
            name="Greeting and no promises",
            data={
                "name": "QA",
                "required_phrases": ["thank you for calling"],
                "forbidden_phrases": ["guarantee"],
                "max_silence_ms": 4000,
                "max_interruptions": 2,
            },
        )
    ],
)
class CallQANodeData(BaseNodeData):
    """The rules one call is scored against."""

    enabled: bool = spec_field(True, description="Score calls of this workflow.")
    required_phrases: list[str] = spec_field(
        default_factory=list,
        ui_type=PropertyType.json,
        description="Phrases the agent must say (case-insensitive), as a JSON list of strings.",
    )
    forbidden_phrases: list[str] = spec_field(
        default_factory=list,
        ui_type=PropertyType.json,
        description="Phrases the agent must never say (case-insensitive), as a JSON list.",
    )
    max_silence_ms: int = spec_field(
        5000, ge=0, description="Longest allowed silence between turns, in milliseconds."
    )
    max_interruptions: int = spec_field(
        3, ge=0, description="How many times the caller may interrupt the agent."
    )
    pass_score: int = spec_field(
        75, ge=0, le=100, description="Score (0-100) at or above which the call passes."
    )

    @model_validator(mode="after")
    def _phrases_are_not_blank(self) -> CallQANodeData:
        for phrase in [*self.required_phrases, *self.forbidden_phrases]:
            if not phrase.strip():
                raise ValueError("phrases must not be blank")
        return self


SPEC = build_spec(CallQANodeData)
NODE = IntegrationNodeRegistration(type_name=TYPE_NAME, data_model=CallQANodeData, node_spec=SPEC)
