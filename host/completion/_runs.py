"""Completion layer: runs for operators — list, show, retry — shared by the CLI and the API.

Contract: plain JSON-ready dicts. `show_run` is a run's job (state, claims, deaths, error) and the
history of every node's attempt groups; `retry_run` revives a finished or parked job and opens a
new attempt group for the chosen nodes (default: the failed ones; `--node` or `--plugin` choose
others), so the host's failure record gives way to the next attempt's result.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..store import Job, JobState, RunStore


def job_dict(job: Job) -> dict[str, Any]:
    return {**asdict(job), "state": job.state.value}


async def list_runs(
    store: RunStore, *, state: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    wanted = JobState(state) if state else None
    return [job_dict(job) for job in await store.list_jobs(state=wanted, limit=limit)]


async def show_run(store: RunStore, run_id: int) -> dict[str, Any]:
    run = await store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id}")
    job = await store.get_job(run_id)
    return {
        "run_id": run_id,
        "job": job_dict(job) if job else None,
        "nodes": [asdict(attempt) for attempt in await store.node_history(run_id)],
    }


async def retry_run(
    store: RunStore, run_id: int, *, nodes: list[str] | None = None, plugin: str | None = None
) -> dict[str, Any]:
    if await store.get_run(run_id) is None:
        raise KeyError(f"no run {run_id}")
    again = await store.retry(run_id, nodes=nodes or None, plugin=plugin)
    job = await store.get_job(run_id)
    return {"run_id": run_id, "nodes": again, "job": job_dict(job) if job else None}
