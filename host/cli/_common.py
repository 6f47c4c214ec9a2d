"""CLI layer: what every `plugbox` command shares — the console, exit codes, common options.

Contract: each option type (`PluginsRoot`, `DataDir`, `Policy`, `GrantsFile`) falls back to its
`PLUGBOX_*` variable (host/_settings.py), then to the command's default. `run(work, hint=...)`
runs async work and turns a plugin, scaffold, OS, lookup or value error into one red line plus
the hint and exit code 3 (a plugin or sandbox error) or 1 (anything else); with `--debug` (set
in `state` by the app's callback) the traceback shows instead. `host_config(...)` is the
`HostConfig` the commands start a host with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from sdk.protocol import PluginError

from .._host import HostConfig
from .._scaffold import ScaffoldError
from .._settings import ENV
from ..sandbox import SandboxPolicy

T = TypeVar("T")
EXIT_FAILED, EXIT_USAGE, EXIT_PLUGIN = 1, 2, 3

console = Console()
state: dict[str, bool] = {"debug": False}

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


def run(work: Callable[[], Awaitable[T]], *, hint: str = "") -> T:
    """Run async work; turn errors into one line plus a hint (tracebacks with --debug)."""
    try:
        return anyio.run(work)
    except (PluginError, ScaffoldError, OSError, KeyError, ValueError) as exc:
        if state["debug"]:
            raise
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        if hint:
            console.print(f"[dim]hint: {escape(hint)}[/dim]")
        raise typer.Exit(EXIT_PLUGIN if isinstance(exc, PluginError) else EXIT_FAILED) from None


def host_config(
    plugins: Path,
    data_dir: Path,
    policy: SandboxPolicy = SandboxPolicy.standard,
    grants: Path | None = None,
) -> HostConfig:
    return HostConfig(
        plugins_root=plugins, data_dir=data_dir, sandbox_policy=policy, grants_file=grants
    )
