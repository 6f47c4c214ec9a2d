"""CLI layer: the `plugbox` command (typer + rich).

Commands: `serve`, `demo`, `plugins list|spec|check|install`, `runs list|show|retry`
(`_runs_cli`), `new`, `doctor`, `worker`, and `logs`, `dev`, `plugins restart|test` (`_cli_ops`).
Options fall back to `PLUGBOX_*` environment variables (`_settings`). Errors are one readable line
plus a hint; `--debug` shows tracebacks. Exit codes: 0 success, 1 a check or an operation failed,
2 usage error, 3 a plugin or sandbox error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sdk.protocol import PluginError

from . import _cli_ops
from ._host import HostConfig, PluginHost
from ._logs import configure_logging
from ._manifest import discover
from ._registry import PackageInfo
from ._runs_cli import StoreUrl, runs_app
from ._scaffold import ScaffoldError, scaffold_plugin
from ._settings import ENV, Settings
from .sandbox import SandboxPolicy, doctor_report, layers_for

T = TypeVar("T")
EXIT_FAILED, EXIT_USAGE, EXIT_PLUGIN = 1, 2, 3

app = typer.Typer(
    help="plugbox: sandboxed subprocess plugins for voice-agent integrations.", no_args_is_help=True
)
plugins_app = typer.Typer(help="Inspect, check and install plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.command("logs")(_cli_ops.logs)
plugins_app.command("restart")(_cli_ops.restart)
plugins_app.command("test")(_cli_ops.plugin_tests)
app.command("dev")(_cli_ops.dev)
app.add_typer(runs_app, name="runs")
console = Console()
_state: dict[str, bool] = {"debug": False}

# Each option falls back to its PLUGBOX_* variable (host/_settings.py), then to the default.
PluginsRoot = Annotated[
    Path,
    typer.Option(
        "--plugins", envvar=ENV["plugins"], help="Directory holding one folder per plugin."
    ),
]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar=ENV["data_dir"], help="Venvs, spec cache, run store, plugin data."
    ),
]
Policy = Annotated[
    SandboxPolicy,
    typer.Option(
        "--policy",
        envvar=ENV["policy"],
        help="Sandbox policy: strict, standard, process-only or off.",
    ),
]
GrantsFile = Annotated[
    Path | None,
    typer.Option(
        "--grants",
        envvar=ENV["grants"],
        help="The operator's grants file (default: DATA_DIR/grants.toml).",
    ),
]


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks; log at DEBUG.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar=ENV["log_level"],
            help="DEBUG, INFO, WARNING or ERROR (default INFO).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", envvar=ENV["log_format"], help="text (default) or json, for shipping."
        ),
    ] = None,
) -> None:
    _state["debug"] = debug
    given = {"log_level": log_level, "log_format": log_format}
    try:
        settings = Settings.model_validate({k: v for k, v in given.items() if v})
    except ValidationError as exc:
        problems = "; ".join(f"{ENV[str(e['loc'][0])]}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/red] {escape(problems)}")
        raise typer.Exit(EXIT_USAGE) from None
    level = "DEBUG" if debug else settings.log_level
    configure_logging(level, settings.log_format)


def _run(work: Callable[[], Awaitable[T]], *, hint: str = "") -> T:
    """Run async work; turn errors into one line plus a hint (tracebacks with --debug)."""
    try:
        return anyio.run(work)
    except (PluginError, ScaffoldError, OSError, KeyError, ValueError) as exc:
        if _state["debug"]:
            raise
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        if hint:
            console.print(f"[dim]hint: {escape(hint)}[/dim]")
        raise typer.Exit(EXIT_PLUGIN if isinstance(exc, PluginError) else EXIT_FAILED) from None


def _types_cell(info: PackageInfo) -> str:
    """Served types, then declared but unserved ones in red (contested, or pinned elsewhere)."""
    cells = [escape(t) for t in info.type_names]
    cells += [f"[red]{escape(t)} (not served)[/red]" for t in sorted(info.unserved)]
    return ", ".join(cells)


def _config(
    plugins: Path,
    data_dir: Path,
    policy: SandboxPolicy = SandboxPolicy.standard,
    grants: Path | None = None,
) -> HostConfig:
    return HostConfig(
        plugins_root=plugins, data_dir=data_dir, sandbox_policy=policy, grants_file=grants
    )


@app.command()
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

    from .api import create_app
    from .store import open_store

    configured = Settings().api_token
    token = None if no_auth else configured.get_secret_value() if configured else None
    if not no_auth and token is None:
        token = secrets.token_urlsafe(32)
        # Printed once, on the operator's terminal only: never logged.
        console.print(f"API token (set {ENV['api_token']} to choose one): {token}")

    async def work() -> None:
        async with (
            PluginHost(_config(plugins, data_dir, policy, grants)) as host,
            open_store(store_url, data_dir=data_dir) as store,
        ):
            app = create_app(host, store, token=token)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port))
            console.print(f"plugbox API on http://127.0.0.1:{port}/api/v1/node-types")
            await server.serve()

    _run(work, hint="is the port free? `plugbox doctor` checks the sandbox")


@app.command()
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
        config = _config(plugins, data_dir, policy, grants)
        return await run_demo(config, console=console, serve=serve_api, port=port)

    _run(work, hint="run `plugbox doctor` to see which sandbox layers work here")


@plugins_app.command("list")
def list_plugins(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Name, version, node types, state, sandbox layers and venv of every plugin."""

    async def work() -> None:
        async with PluginHost(_config(plugins, data_dir, policy, grants)) as host:
            await host.registry.refresh()
            table = Table()
            for column in ("name", "version", "node types", "phase", "state", "sandbox", "venv"):
                table.add_column(column)
            for name, manifest in host.manifests.items():
                info = host.registry.get_package(name)
                types = _types_cell(info) if info else "[red]spec failed[/red]"
                venv = host.venvs.root / host.venvs.key_for(manifest)
                try:
                    granted = host.effective(manifest).policy
                    layers = ", ".join(layers_for(granted, name=name)) or "none (policy off)"
                except PluginError as refused:
                    layers = f"[red]refused: {escape(refused.message)}[/red]"
                table.add_row(
                    escape(name),
                    escape(manifest.version),
                    types,
                    escape(manifest.completion.phase),
                    host.get(name).state.value,
                    layers,
                    escape(str(venv)),
                )
            console.print(table)
            for error in [*host.discovery_errors, *host.registry.errors]:
                console.print(f"[red]broken:[/red] {escape(str(error))}")

    _run(work)


@plugins_app.command("spec")
def plugin_spec(
    name: str, plugins: PluginsRoot = Path("plugins"), data_dir: DataDir = Path(".plugbox")
) -> None:
    """The plugin's package spec as JSON."""

    async def work() -> None:
        async with PluginHost(_config(plugins, data_dir)) as host:
            await host.registry.refresh()
            info = host.registry.get_package(name)
            if info is None:
                raise KeyError(f"no loaded plugin named {name!r}")
            sys.stdout.write(json.dumps([n.spec for n in info.spec.nodes], indent=2) + "\n")

    _run(work, hint="`plugbox plugins list` shows the plugins and their errors")


@plugins_app.command("check")
def check(path: Path, data_dir: DataDir = Path(".plugbox")) -> None:
    """Run the contract's testing expectations against the plugin in PATH (in its sandbox)."""
    from sdk.testing import check_plugin

    from .client import CheckCaller

    target = path.resolve()
    root = target.parent
    data_dir = _cli_ops.data_dir_outside(data_dir, target)  # never inside the plugin's folder

    async def work() -> bool:
        progress = lambda m: console.print(escape(f"  {m}"))  # noqa: E731 - venv build steps
        async with PluginHost(_config(root, data_dir), progress=progress) as host:
            name = next((n for n, m in host.manifests.items() if m.directory == target), None)
            if name is None:
                problems = [str(e) for e in host.discovery_errors if e.path.parent == target]
                raise ValueError(
                    f"{path} is not a valid plugin: {'; '.join(problems) or 'no plugin.toml'}"
                )
            report = await check_plugin(CheckCaller(host.client(name)))
            for expectation in report.expectations:
                colour = {
                    "passed": "green",
                    "failed": "red",
                    "skipped": "yellow",
                    "warning": "yellow",
                }[expectation.status]
                line = escape(f"{expectation.name}: {expectation.message}")
                console.print(f"[{colour}]{expectation.status:>7}[/{colour}]  {line}")
            return report.ok

    if not _run(work, hint="fix the expectation named above, then run the check again"):
        raise typer.Exit(EXIT_FAILED)


@plugins_app.command("install")
def install(
    path: Annotated[
        Path | None, typer.Argument(help="One plugin folder (default: every plugin).")
    ] = None,
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve without asking.")] = False,
) -> None:
    """Show what each plugin requests vs what is granted, record approval, build its venv."""
    from ._cli_grants import approve_requested, decisions_table
    from ._grants import GRANTS_FILE, load_grants, review, save_grants

    root = path.resolve().parent if path else plugins
    grants_path = grants or data_dir / GRANTS_FILE
    config = _config(root, data_dir, policy, grants_path)
    found = discover(root)
    chosen = [m for m in found.manifests.values() if path is None or m.directory == path.resolve()]
    if path is not None and not chosen:
        problems = [str(e) for e in found.errors if e.path.parent == path.resolve()]
        console.print(
            f"[red]error:[/red] {escape(str(path))} is not a valid plugin: "
            f"{escape('; '.join(problems) or 'no plugin.toml')}"
        )
        raise typer.Exit(EXIT_FAILED)
    current = load_grants(grants_path)
    refused: list[str] = []
    for manifest in chosen:
        decisions = review(manifest, current, policy)
        console.print(decisions_table(manifest, decisions))
        if any(d.status == "excess" for d in decisions):
            if yes or typer.confirm(f"Grant {manifest.name} what it requests?", default=False):
                current = approve_requested(manifest, current, policy)
                save_grants(current, grants_path)
                console.print(decisions_table(manifest, review(manifest, current, policy)))
                console.print(f"recorded in {grants_path}")
            else:
                refused.append(manifest.name)
                console.print(f"[yellow]{escape(manifest.name)} not approved: it will not start")

    async def work() -> None:
        async with PluginHost(config, progress=lambda m: console.print(f"  {escape(m)}")) as host:
            for manifest in (m for m in chosen if m.name not in refused):
                venv = await host.ensure_venv(manifest)
                state = "built" if venv.built else "reused"
                console.print(f"{escape(manifest.name)}: {venv.path} ({state})")

    _run(work, hint="the installer's output is in the error above")
    if refused:
        raise typer.Exit(EXIT_FAILED)


@plugins_app.command("lock")
def lock(path: Annotated[Path, typer.Argument(help="The plugin folder.")]) -> None:
    """Resolve the plugin's requirements (sandboxed) into a hashed requirements.lock beside it."""
    from ._lock import uv_executable, write_lock
    from ._manifest import ManifestError, load_manifest
    from ._venv import base_interpreter, sdk_requirements, uv_cache_dir

    uv = uv_executable()
    try:
        manifest = load_manifest(path)
        if uv is None:
            raise ValueError("locking needs uv (pip install uv)")
        target = write_lock(
            manifest,
            sdk_requirements=sdk_requirements(),
            python=manifest.python or str(base_interpreter()),
            uv=uv,
            cache_dir=uv_cache_dir(),
        )
    except (ManifestError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    pins = [line for line in target.read_text().splitlines() if "==" in line]
    console.print(f"wrote {escape(str(target))}: {len(pins)} pinned, hashed requirements")


@plugins_app.command("grant")
def grant(
    name: str,
    env: Annotated[list[str] | None, typer.Option("--env", help="Grant an env key.")] = None,
    network: Annotated[
        list[str] | None,
        typer.Option("--network", help="Grant a destination host:port (`all`: all network)."),
    ] = None,
    writable: Annotated[
        list[str] | None, typer.Option("--writable", help="Grant a data-dir sub-path.")
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", help="Raise a cap: NAME=INT.")
    ] = None,
    decline: Annotated[
        list[str] | None, typer.Option("--decline", help="Decline a request by label.")
    ] = None,
    revoke: Annotated[
        list[str] | None, typer.Option("--revoke", help="Remove a grant by label.")
    ] = None,
    plugin_policy: Annotated[
        SandboxPolicy | None,
        typer.Option("--plugin-policy", help="The operator's policy for this plugin."),
    ] = None,
    node_type: Annotated[
        list[str] | None,
        typer.Option("--node-type", help="Pin a node type two plugins declare to this one."),
    ] = None,
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Change what the operator grants plugin NAME, then show requested vs granted."""
    from ._cli_grants import decisions_table, edit_grant
    from ._grants import GRANTS_FILE, load_grants, review, save_grants

    grants_path = grants or data_dir / GRANTS_FILE
    try:
        current = load_grants(grants_path)
        updated = edit_grant(
            current.for_plugin(name),
            env=env or (),
            network=network or (),
            writable=writable or (),
            limits=limit or (),
            decline=decline or (),
            revoke=revoke or (),
            policy=plugin_policy.value if plugin_policy else None,
            node_types=node_type or (),
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    current = current.with_plugin(name, updated)
    save_grants(current, grants_path)
    manifest = discover(plugins).manifests.get(name)
    if manifest is not None:
        console.print(decisions_table(manifest, review(manifest, current, policy)))
    console.print(f"recorded in {grants_path}")


@app.command()
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


@app.command()
def doctor(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Which sandbox layers work on this machine (tried, not assumed), and each plugin's verdict."""
    from ._grants import effective_policy

    found = discover(plugins)
    operator = _config(plugins, data_dir, policy, grants).load_grants()
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


@app.command()
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
    from .completion._arq import WorkerConfig, serve_worker

    config = WorkerConfig(
        redis_url=redis,
        host_config=_config(plugins, data_dir, policy, grants),
        store_path=data_dir / "runs.sqlite3",
        store_url=store_url,
        lease_s=lease,
        grace_s=grace,
    )
    _run(lambda: serve_worker(config), hint="is Redis reachable? is the run store reachable?")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
