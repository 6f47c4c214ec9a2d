"""HTTP layer: workflow definitions validated, masked for reading, and secrets merged on save.

Contract: `POST /api/v1/workflows/validate` checks every node through its plugin (batched per
plugin, model validators included), knows the platform's core node types
(`ApiState.core_node_types`, validated by the platform, not here), and checks the graph as the
reference does (`_graph.py`: dangling edges, edge counts, instance counts), listing every problem
with its kind (node, edge, workflow), id, field and the reference's message.
`POST /api/v1/workflows/mask` masks every sensitive field; `POST /api/v1/workflows/merge-secrets`
restores real secrets where the incoming value is the stored value's mask and refuses (422) a value
that still looks masked. Driven only by the specs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sdk.protocol import ValidateItem, ValidateOutcome, iter_nodes, node_data

from .._masking import MaskedSecretError, mask_definition, merge_secrets
from .._registry import Registry
from ._graph import GraphProblem, graph_problems
from ._state import ApiStateDep

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])


class WorkflowDefinition(BaseModel):
    """A workflow definition: nodes (a list, or an id -> node mapping) and edges."""

    model_config = ConfigDict(extra="allow")

    nodes: list[dict[str, Any]] | dict[str, dict[str, Any]] = Field(default_factory=list)
    edges: list[dict[str, Any]] = Field(default_factory=list)


class MergeSecretsRequest(BaseModel):
    incoming: WorkflowDefinition
    stored: WorkflowDefinition


class Problem(BaseModel):
    node_id: str | None
    field: str | None
    message: str
    type: str
    kind: str = "node"  # "node" | "edge" | "workflow", as the reference's ItemKind
    edge_id: str | None = None


class ValidationReport(BaseModel):
    valid: bool
    problems: list[Problem]


@router.post("/validate")
async def validate_workflow(body: WorkflowDefinition, state: ApiStateDep) -> ValidationReport:
    """Every problem of a definition: node data, unknown types, graph constraints."""
    registry = await state.ready()
    definition = body.model_dump()
    # The request's secrets are known (scrubbed from logs and errors) only while it runs.
    with state.plugins.scoped_secrets(definitions=(definition,)):
        nodes = list(iter_nodes(definition))
        problems = await _node_problems(nodes, registry, state.core_node_types)
    problems += [
        _problem(found)
        for found in graph_problems(
            nodes, definition.get("edges") or [], registry.get_node_spec, registry.all_node_specs()
        )
    ]
    return ValidationReport(valid=not problems, problems=problems)


@router.post("/mask")
async def mask_workflow(body: WorkflowDefinition, state: ApiStateDep) -> dict[str, Any]:
    """The definition with every sensitive field masked."""
    registry = await state.ready()
    # Masking needs no scrubber: nothing here logs or calls a plugin, so nothing is learned.
    return mask_definition(body.model_dump(), registry.sensitive_fields)


@router.post("/merge-secrets", response_model=None)
async def merge_workflow_secrets(
    body: MergeSecretsRequest, state: ApiStateDep
) -> dict[str, Any] | JSONResponse:
    """The incoming definition with stored secrets restored where it carries their masks."""
    registry = await state.ready()
    incoming, stored = body.incoming.model_dump(), body.stored.model_dump()
    try:
        return merge_secrets(incoming, stored, registry.sensitive_fields)
    except MaskedSecretError as error:
        problems = [
            {"node_id": p.node_id, "field": p.field, "message": p.message, "type": "masked_secret"}
            for p in error.problems
        ]
        return JSONResponse({"detail": problems}, status_code=422)


async def _node_problems(
    nodes: list[dict[str, Any]], registry: Registry, core_types: frozenset[str]
) -> list[Problem]:
    problems: list[Problem] = []
    items: list[ValidateItem] = []
    owners: list[str] = []
    for node in nodes:
        node_id, type_name = str(node.get("id")), str(node.get("type"))
        if type_name in core_types and registry.get_node_spec(type_name) is None:
            continue  # the platform's own node type: its data is the platform's to validate
        if registry.get_node_spec(type_name) is None:
            problems.append(
                Problem(
                    node_id=node_id,
                    field="type",
                    message=f"Unknown node type: '{type_name}'",
                    type="unknown_type",
                )
            )
            continue
        items.append(ValidateItem(type_name=type_name, data=node_data(node)))
        owners.append(node_id)
    if items:
        outcomes = await registry.validate_nodes(items)
        for node_id, outcome in zip(owners, outcomes, strict=True):
            problems += _outcome_problems(node_id, outcome)
    return problems


def _outcome_problems(node_id: str, outcome: ValidateOutcome) -> list[Problem]:
    return [
        Problem(
            node_id=node_id,
            field=".".join(str(part) for part in issue.loc) or None,
            message=issue.msg,
            type=issue.type,
        )
        for issue in outcome.errors
    ]


def _problem(found: GraphProblem) -> Problem:
    return Problem(
        node_id=found.id if found.kind == "node" else None,
        edge_id=found.id if found.kind == "edge" else None,
        field=found.field,
        message=found.message,
        type=found.type,
        kind=found.kind,
    )
