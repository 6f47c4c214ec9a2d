"""HTTP layer: operators' view of completion runs — list, show, retry (the CLI's `plugbox runs`).

Contract: `GET /api/v1/runs?state=&limit=` lists jobs newest first; `GET /api/v1/runs/{id}` is a
run's job and node attempt history; `POST /api/v1/runs/{id}/retry` with an optional
`{"nodes": [...], "plugin": "..."}` makes the job pending again with a new attempt group for
those nodes (default: the failed ones). 404 for an unknown run or no store; 409 while a live
worker runs the job.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from ..completion._runs import list_runs, retry_run, show_run
from ..store import JobRunning, JobState, RunStore
from ._state import ApiStateDep

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # a SQLite INTEGER


class RetryRequest(BaseModel):
    nodes: list[str] | None = None
    plugin: str | None = None


def _store(state: ApiStateDep) -> RunStore:
    if state.store is None:
        raise HTTPException(status_code=404, detail="no run store")
    return state.store


@router.get("")
async def runs(
    state: ApiStateDep,
    job_state: Annotated[JobState | None, Query(alias="state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Jobs, newest first, optionally in one state."""
    wanted = job_state.value if job_state else None
    jobs = await list_runs(_store(state), state=wanted, limit=limit)
    return {"runs": jobs}


@router.get("/{run_id}")
async def run(run_id: RunId, state: ApiStateDep) -> dict[str, Any]:
    """A run's job and the history of its nodes' attempt groups."""
    try:
        return await show_run(_store(state), run_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no run {run_id}") from None


@router.post("/{run_id}/retry")
async def retry(run_id: RunId, state: ApiStateDep, body: RetryRequest | None = None) -> Any:
    """Run the chosen nodes again (default: the failed ones) under a new attempt group."""
    request = body or RetryRequest()
    try:
        return await retry_run(_store(state), run_id, nodes=request.nodes, plugin=request.plugin)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no run {run_id}") from None
    except JobRunning as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
