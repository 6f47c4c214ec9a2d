"""CLI layer: the host commands — `serve`, `demo`, `worker`, `new`, `doctor`.

Contract: `serve` runs the HTTP API on 127.0.0.1 with a bearer token (`PLUGBOX_API_TOKEN`, else
one printed once on the terminal, never logged; `--no-auth` for local use); `demo` runs the
scripted call through every bundled plugin; `worker` runs the ARQ worker for post-call jobs
(SIGTERM drains); `new` scaffolds a plugin that passes `plugins check` as is; `doctor` tries
each sandbox layer on this machine and gives each plugin's verdict under the policy. Errors
are one line plus a hint (`_common.run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .._host import PluginHost
from .._manifest import discover
from .._scaffold import ScaffoldError, scaffold_plugin
from .._settings import ENV, Settings
from ..sandbox import SandboxPolicy, doctor_report
from ._common import (
    EXIT_USAGE,
    DataDir,
    GrantsFile,
    PluginsRoot,
    Policy,
    console,
    host_config,
    run,
)
from ._runs import StoreUrl


def serve(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
    port: Annotated[int, typer.Option(envvar=ENV["port"], help="Port on 127.0.0.1.")] = 8700,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without the bearer token (local use only).")
    ] = False,
    store_url: StoreUrl = None,
) -> None:
    """Serve the HTTP API on 127.0.0.1 (a bearer token on every non-public endpoint)."""
    import secrets

    import uvicorn

    from ..api import create_app
    from ..store import open_store

    configured = Settings().api_token
    token = None if no_auth else configured.get_secret_value() if configured else None
    if not no_auth and token is None:
        token = secrets.token_urlsafe(32)
        # Printed once, on the operator's terminal only: never logged.
        console.print(f"API token (set {ENV['api_token']} to choose one): {token}")

    async def work() -> None:
        async with (
            PluginHost(host_config(plugins, data_dir, policy, grants)) as host,
            open_store(store_url, data_dir=data_dir) as store,
        ):
            app = create_app(host, store, token=token)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port))
            console.print(f"plugbox API on http://127.0.0.1:{port}/api/v1/node-types")
            await server.serve()

    run(work, hint="is the port free? `plugbox doctor` checks the sandbox")


def demo(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox/demo"),
    policy: Policy = SandboxPolicy.standard,
    serve_api: Annotated[
        bool, typer.Option("--serve", help="Keep serving the API afterwards.")
    ] = False,
    port: Annotated[int, typer.Option(help="API port on 127.0.0.1 (0: any free port).")] = 0,
    grants: GrantsFile = None,
) -> None:
    """Run one scripted call through every bundled plugin and print what happened."""
    from plugbox_demo import run_demo

    async def work() -> dict[str, Any]:
        config = host_config(plugins, data_dir, policy, grants)
        return await run_demo(config, console=console, serve=serve_api, port=port)

    run(work, hint="run `plugbox doctor` to see which sandbox layers work here")


def new(
    name: str,
    directory: Annotated[Path, typer.Option("--dir", help="Plugins root.")] = Path("plugins"),
) -> None:
    """Scaffold a plugin from the golden path; it passes `plugbox plugins check` as is."""
    try:
        target = scaffold_plugin(name, directory)
    except ScaffoldError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    console.print(escape(f"created {target}; next: plugbox plugins check {target}"))


def doctor(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Which sandbox layers work on this machine (tried, not assumed), and each plugin's verdict."""
    from .._grants import effective_policy

    found = discover(plugins)
    operator = host_config(plugins, data_dir, policy, grants).load_grants()
    report = doctor_report(
        [
            (name, effective_policy(m, operator.for_plugin(name), policy))
            for name, m in found.manifests.items()
        ]
    )
    layers = Table(title="Sandbox layers")
    for column in ("layer", "works here", "detail", "how to get it"):
        layers.add_column(column)
    for layer in report.layers:
        layers.add_row(
            layer.name,
            "yes" if layer.available else "[red]no[/red]",
            escape(layer.detail),
            escape(layer.hint),
        )
    console.print(layers)
    verdicts = Table(title=f"Plugins under policy {policy.value!r}")
    for column in ("plugin", "policy", "layers", "verdict"):
        verdicts.add_column(column)
    for verdict in report.plugins:
        state = f"[red]refused: {escape(verdict.refused)}[/red]" if verdict.refused else "runs"
        verdicts.add_row(
            escape(verdict.plugin), verdict.policy.value, ", ".join(verdict.layers) or "none", state
        )
    console.print(verdicts)


def worker(
    redis: Annotated[
        str,
        typer.Option(
            "--redis", envvar=ENV["redis_url"], help="Redis URL, e.g. redis://127.0.0.1:6379/0"
        ),
    ],
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
    lease: Annotated[float, typer.Option(help="Seconds before a dead worker's jobs move.")] = 30.0,
    grace: Annotated[float, typer.Option(help="Seconds SIGTERM lets running jobs finish.")] = 60.0,
    store_url: StoreUrl = None,
) -> None:
    """Run an ARQ worker that executes post-call completion jobs from Redis.

    SIGTERM drains: no new jobs, running ones get `--grace` seconds, the rest go back to pending.
    """
    from ..completion._arq import WorkerConfig, serve_worker

    config = WorkerConfig(
        redis_url=redis,
        host_config=host_config(plugins, data_dir, policy, grants),
        store_path=data_dir / "runs.sqlite3",
        store_url=store_url,
        lease_s=lease,
        grace_s=grace,
    )
    run(lambda: serve_worker(config), hint="is Redis reachable? is the run store reachable?")
