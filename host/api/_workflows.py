"""HTTP layer: workflow definitions validated, masked for reading, and secrets merged on save.

Contract: `POST /api/v1/workflows/validate` checks every node through its plugin (batched per
plugin, model validators included) and every node's graph constraints against the edges, and lists
every problem with node id, field and message. `POST /api/v1/workflows/mask` masks every sensitive
field; `POST /api/v1/workflows/merge-secrets` restores real secrets where the incoming value is the
stored value's mask and refuses (422) a value that still looks masked. Driven only by the specs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sdk.protocol import ValidateItem, ValidateOutcome

from .._masking import MaskedSecretError, iter_nodes, mask_definition, merge_secrets, node_data
from .._redaction import secret_values
from .._registry import Registry
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


class ValidationReport(BaseModel):
    valid: bool
    problems: list[Problem]


@router.post("/validate")
async def validate_workflow(body: WorkflowDefinition, state: ApiStateDep) -> ValidationReport:
    """Every problem of a definition: node data, unknown types, graph constraints."""
    registry = await state.ready()
    definition = body.model_dump()
    state.scrubber.add(secret_values(definition, registry.sensitive_fields))
    nodes = list(iter_nodes(definition))
    problems = await _node_problems(nodes, registry)
    problems += _graph_problems(nodes, definition.get("edges") or [], registry)
    return ValidationReport(valid=not problems, problems=problems)


@router.post("/mask")
async def mask_workflow(body: WorkflowDefinition, state: ApiStateDep) -> dict[str, Any]:
    """The definition with every sensitive field masked."""
    registry = await state.ready()
    definition = body.model_dump()
    state.scrubber.add(secret_values(definition, registry.sensitive_fields))
    return mask_definition(definition, registry.sensitive_fields)


@router.post("/merge-secrets", response_model=None)
async def merge_workflow_secrets(
    body: MergeSecretsRequest, state: ApiStateDep
) -> dict[str, Any] | JSONResponse:
    """The incoming definition with stored secrets restored where it carries their masks."""
    registry = await state.ready()
    for definition in (body.incoming, body.stored):
        state.scrubber.add(secret_values(definition.model_dump(), registry.sensitive_fields))
    try:
        return merge_secrets(
            body.incoming.model_dump(), body.stored.model_dump(), registry.sensitive_fields
        )
    except MaskedSecretError as error:
        problems = [
            {"node_id": p.node_id, "field": p.field, "message": p.message, "type": "masked_secret"}
            for p in error.problems
        ]
        return JSONResponse({"detail": problems}, status_code=422)


async def _node_problems(nodes: list[dict[str, Any]], registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    items: list[ValidateItem] = []
    owners: list[str] = []
    for node in nodes:
        node_id, type_name = str(node.get("id")), str(node.get("type"))
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


def _graph_problems(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], registry: Registry
) -> list[Problem]:
    incoming = Counter(str(edge.get("target")) for edge in edges if isinstance(edge, dict))
    outgoing = Counter(str(edge.get("source")) for edge in edges if isinstance(edge, dict))
    problems: list[Problem] = []
    for node in nodes:
        node_id = str(node.get("id"))
        spec = registry.get_node_spec(str(node.get("type")))
        constraints = (spec or {}).get("graph_constraints") or {}
        for direction, count in (("incoming", incoming[node_id]), ("outgoing", outgoing[node_id])):
            message = _bound_violation(direction, count, constraints)
            if message:
                problems.append(
                    Problem(node_id=node_id, field=None, message=message, type="graph_constraint")
                )
    return problems


def _bound_violation(direction: str, count: int, constraints: dict[str, Any]) -> str | None:
    low, high = constraints.get(f"min_{direction}"), constraints.get(f"max_{direction}")
    if isinstance(low, int) and count < low:
        return f"needs at least {low} {direction} edge(s), has {count}"
    if isinstance(high, int) and count > high:
        return f"allows at most {high} {direction} edge(s), has {count}"
    return None
