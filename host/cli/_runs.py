"""CLI layer: `plugbox runs list|show|retry` — completion jobs in the run store, for operators.

Contract: reads and changes only the run store (`--store` / `PLUGBOX_STORE_URL`, default the
SQLite file under `--data-dir`; no plugin starts). `retry`
makes the job pending again; a running worker (embedded or ARQ, through its reaper) takes it up.
Exit codes as the rest of the CLI: 1 unknown run, 3 a store error (it names the file or the
database).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._settings import ENV
from ..completion._runs import list_runs, retry_run, show_run
from ..store import RunStore, StoreError, open_store

runs_app = typer.Typer(help="Completion jobs: list, show, retry.", no_args_is_help=True)
console = Console()
DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the run store lives.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=ENV["store_url"],
        help="Run store URL: postgresql://user@host/db?schema=plugbox (default: the SQLite file"
        " in the data directory).",
    ),
]


def _with_store(
    data_dir: Path, work: Callable[[RunStore], Awaitable[Any]], store_url: str | None = None
) -> Any:
    async def main() -> Any:
        async with open_store(store_url, data_dir=data_dir) as store:
            return await work(store)

    try:
        return anyio.run(main)
    except KeyError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc.args[0]))}")
        raise typer.Exit(1) from None
    except StoreError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(3) from None


@runs_app.command("list")
def list_command(
    data_dir: DataDir = Path(".plugbox"),
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
    store_url: StoreUrl = None,
) -> None:
    """List completion jobs, newest first."""
    jobs = _with_store(
        data_dir, lambda store: list_runs(store, state=state, limit=limit), store_url
    )
    if as_json:
        console.print_json(json.dumps(jobs))
        return
    table = Table("run", "state", "claims", "deaths", "error")
    for job in jobs:
        error = (job["error"] or "")[:80]
        table.add_row(
            str(job["run_id"]), job["state"], str(job["claims"]), str(job["deaths"]), escape(error)
        )
    console.print(table)


@runs_app.command("show")
def show_command(
    run: int,
    data_dir: DataDir = Path(".plugbox"),
    as_json: AsJson = False,
    store_url: StoreUrl = None,
) -> None:
    """A run's job and every node's attempt history."""
    shown = _with_store(data_dir, lambda store: show_run(store, run), store_url)
    if as_json:
        console.print_json(json.dumps(shown))
        return
    job = shown["job"] or {}
    console.print(f"run {run}: {job.get('state', 'no job')}  {escape(job.get('error') or '')}")
    table = Table("node", "group", "plugin", "status", "attempts", "error")
    for node in shown["nodes"]:
        table.add_row(
            escape(node["node_id"]),
            str(node["attempt_group"]),
            escape(node["plugin"]),
            node["status"],
            str(node["attempts"]),
            escape((node["error"] or "")[:80]),
        )
    console.print(table)


@runs_app.command("retry")
def retry_command(
    run: int,
    data_dir: DataDir = Path(".plugbox"),
    node: Annotated[list[str] | None, typer.Option("--node", help="Node id (repeatable).")] = None,
    plugin: Annotated[str | None, typer.Option("--plugin", help="Every node of it.")] = None,
    store_url: StoreUrl = None,
) -> None:
    """Run a job again: the failed nodes, or the ones named, under a new attempt group."""
    done = _with_store(
        data_dir, lambda store: retry_run(store, run, nodes=node, plugin=plugin), store_url
    )
    nodes = ", ".join(done["nodes"]) or "none (only unrecorded nodes run)"
    console.print(f"run {run}: pending again; nodes to run again: {escape(nodes)}")
