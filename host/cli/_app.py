"""CLI layer: the `plugbox` typer app — its global options and every command, in help order.

Contract: `app` carries `--debug`, `--log-level` and `--log-format` (falling back to
`PLUGBOX_LOG_LEVEL` / `PLUGBOX_LOG_FORMAT`; an invalid value is one line and exit 2) and
configures logging before any command runs. Commands are registered here, in the order `--help`
lists them; each lives in the module of its group (`_commands`, `_plugins`, `_ops`, `_runs`).
`main()` runs the app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from .._logs import configure_logging
from .._settings import ENV, Settings
from . import _commands, _ops, _plugins
from ._common import EXIT_USAGE, console, state
from ._runs import runs_app

app = typer.Typer(
    help="plugbox: sandboxed subprocess plugins for voice-agent integrations.", no_args_is_help=True
)
plugins_app = typer.Typer(help="Inspect, check and install plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.command("logs")(_ops.logs)
plugins_app.command("restart")(_ops.restart)
plugins_app.command("test")(_ops.plugin_tests)
app.command("dev")(_ops.dev)
app.add_typer(runs_app, name="runs")
app.command()(_commands.serve)
app.command()(_commands.demo)
plugins_app.command("list")(_plugins.list_plugins)
plugins_app.command("spec")(_plugins.plugin_spec)
plugins_app.command("check")(_plugins.check)
plugins_app.command("install")(_plugins.install)
plugins_app.command("lock")(_plugins.lock)
plugins_app.command("grant")(_plugins.grant)
app.command()(_commands.new)
app.command()(_commands.doctor)
app.command()(_commands.worker)


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
    state["debug"] = debug
    given = {"log_level": log_level, "log_format": log_format}
    try:
        settings = Settings.model_validate({k: v for k, v in given.items() if v})
    except ValidationError as exc:
        problems = "; ".join(f"{ENV[str(e['loc'][0])]}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/red] {escape(problems)}")
        raise typer.Exit(EXIT_USAGE) from None
    level = "DEBUG" if debug else settings.log_level
    configure_logging(level, settings.log_format)


def main() -> None:
    app()
