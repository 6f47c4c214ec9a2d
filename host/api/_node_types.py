"""HTTP layer: `/api/v1/node-types`, every plugin's node specs in the contract's wire shape.

Contract (reference REST shape): `GET /api/v1/node-types` returns `{"spec_version": "1.0.0",
"node_types": [...]}` sorted by name with every key present, plus an `errors` list naming each
plugin whose specs could not be loaded (the listing never fails as a whole).
`GET /api/v1/node-types/{name}` returns one spec or 404 `Unknown node type: '<name>'`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ._state import ApiStateDep

SPEC_VERSION = "1.0.0"

router = APIRouter(prefix="/api/v1/node-types", tags=["node types"])


@router.get("")
async def list_node_types(state: ApiStateDep) -> dict[str, Any]:
    """Every node type of every loaded plugin, sorted by name."""
    registry = await state.ready()
    errors = [{"plugin": error.name, "message": error.message} for error in registry.errors]
    errors += [
        {"plugin": error.name, "message": error.message} for error in state.plugins.discovery_errors
    ]
    return {
        "spec_version": SPEC_VERSION,
        "node_types": registry.all_node_specs(),
        "errors": errors,
    }


@router.get("/{name}")
async def get_node_type(name: str, state: ApiStateDep) -> dict[str, Any]:
    """One node type's spec."""
    registry = await state.ready()
    spec = registry.get_node_spec(name)
    if spec is None:
        raise HTTPException(status_code=404, detail=f"Unknown node type: '{name}'")
    return spec
