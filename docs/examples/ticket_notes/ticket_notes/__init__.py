"""Example plugin of docs/authoring.md: counts questions live, files a ticket note after."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints, model_validator

from sdk import (
    BaseNodeData,
    GraphConstraints,
    IntegrationCompletionContext,
    IntegrationNodeRegistration,
    IntegrationPackageSpec,
    IntegrationRuntimeContext,
    IntegrationRuntimeSession,
    NodeCategory,
    NodeExample,
    PropertyType,
    build_spec,
    node_spec,
    register_package,
    spec_field,
)
from sdk.protocol import EventKind, LiveEvent

TYPE_NAME = "ticket_notes"


@node_spec(
    name=TYPE_NAME,
    display_name="Ticket notes",
    description="Add a note with the caller's questions to the ticket after each call.",
    category=NodeCategory.integration,
    icon="Ticket",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    property_order=("name", "endpoint", "api_token"),
    examples=[
        NodeExample(
            name="Helpdesk",
            data={
                "name": "notes",
                "endpoint": "http://127.0.0.1:9/notes",
                "api_token": "tok-12345678",
            },
        )
    ],
)
class TicketNotesNode(BaseNodeData):
    endpoint: Annotated[str, StringConstraints(pattern=r"^https?://")] = spec_field(
        ..., ui_type=PropertyType.url, description="Notes API URL."
    )
    api_token: Annotated[str, StringConstraints(min_length=8)] = spec_field(
        ..., description="Token for the notes API."
    )
    enabled: bool = spec_field(True, description="Turn notes off without deleting the node.")
    min_questions: int = spec_field(
        0, ge=0, description="Only file a note from this many questions."
    )

    @model_validator(mode="after")
    def _token_is_not_a_placeholder(self) -> TicketNotesNode:
        if self.api_token.lower().startswith("changeme"):
            raise ValueError("api_token is still the placeholder")
        return self


class QuestionCounter(IntegrationRuntimeSession):
    name = TYPE_NAME
    subscriptions = frozenset({EventKind.TRANSCRIPT_FINAL})

    def __init__(self) -> None:
        self.questions: list[str] = []

    def on_event(self, event: LiveEvent) -> None:
        text = str(event.data.get("text") or "")
        if text.rstrip().endswith("?") or text.lower().startswith(
            ("what", "how", "why", "when", "caller")
        ):
            self.questions.append(text)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        return {TYPE_NAME: {"questions": self.questions}}


def create_runtime_sessions(context: IntegrationRuntimeContext) -> list[QuestionCounter]:
    return [QuestionCounter()] if context.enabled_nodes(TYPE_NAME) else []


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    snapshot = (context.workflow_run.get("logs") or {}).get(TYPE_NAME) or {"questions": []}
    results: dict[str, Any] = {}
    for node in nodes:
        data = TicketNotesNode.model_validate(node.get("data", {}))
        if not data.enabled:
            continue
        node_id = str(node["id"])
        questions = snapshot["questions"]
        filed = len(questions) >= data.min_questions
        # A real plugin would POST here, sending context.idempotency_keys[node_id] along.
        results[node_id] = {"node_id": node_id, "filed": filed, "questions": len(questions)}
    return results


NODE = IntegrationNodeRegistration(
    type_name=TYPE_NAME,
    data_model=TicketNotesNode,
    node_spec=build_spec(TicketNotesNode),
    sensitive_fields=("api_token",),
)
PACKAGE = register_package(
    IntegrationPackageSpec(
        name=TYPE_NAME,
        nodes=(NODE,),
        create_runtime_sessions=create_runtime_sessions,
        run_completion=run_completion,
    )
)
