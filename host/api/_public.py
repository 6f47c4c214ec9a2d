"""HTTP layer: what completion handlers published for a run, reachable by its public token only.

Contract: `GET /api/v1/public/runs/{token}` lists a run's artifacts by their namespaced names
(`<plugin>/<name>`: each plugin publishes in its own namespace) and `.../artifacts/<plugin>/<name>`
serves one (`.../artifacts/<name>` serves an artifact stored before namespacing). Tokens are
unguessable (the store makes them) and compared in constant time by the store; anything else
(unknown token, unknown artifact, no store) is the same 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from ._state import ApiStateDep

router = APIRouter(prefix="/api/v1/public/runs", tags=["public"])
_NOT_FOUND = "Not found"


@router.get("/{token}")
async def public_run(token: str, state: ApiStateDep) -> dict[str, Any]:
    """The names and URLs of a run's published artifacts."""
    if state.store is None:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    run = await state.store.get_run_by_token(token)
    if run is None:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    names = await state.store.list_artifacts(run.id)
    return {
        "artifacts": [
            {"name": name, "url": f"/api/v1/public/runs/{token}/artifacts/{name}"} for name in names
        ]
    }


@router.get("/{token}/artifacts/{owner}/{name}")
async def public_artifact(token: str, owner: str, name: str, state: ApiStateDep) -> Response:
    """One published artifact, with the content type its handler gave."""
    return await _artifact(token, owner, name, state)


@router.get("/{token}/artifacts/{name}")
async def public_legacy_artifact(token: str, name: str, state: ApiStateDep) -> Response:
    """An artifact stored before artifacts were namespaced (it has no owner)."""
    return await _artifact(token, "", name, state)


async def _artifact(token: str, owner: str, name: str, state: ApiStateDep) -> Response:
    if state.store is None:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    run = await state.store.get_run_by_token(token)
    artifact = None if run is None else await state.store.get_artifact(run.id, owner, name)
    if artifact is None:
        raise HTTPException(status_code=404, detail=_NOT_FOUND)
    content_type, body = artifact
    return Response(
        body,
        media_type=content_type,
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )
