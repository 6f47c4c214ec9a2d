"""Call metrics plugin: HTTP routes, mounted by the host under /api/v1/integrations/call_metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .report import aggregate, read_stats

router = APIRouter()


@router.get("/stats")
def stats() -> dict[str, Any]:
    """Aggregated figures over every run this plugin has reported on."""
    return aggregate(read_stats())


@router.get("/stats/runs/{run_id}")
def run_stats(run_id: int) -> dict[str, Any]:
    """The recorded figures of one run (empty list when unknown)."""
    return {"run_id": run_id, "records": [r for r in read_stats() if r.get("run_id") == run_id]}
