"""CLI layer: the `plugbox` command (typer + rich).

Commands: `serve`, `demo`, `worker`, `new`, `doctor` (`_commands`); `plugins
list|spec|check|install|lock|grant` (`_plugins`, with `_permissions` for the grants tables);
`runs list|show|retry` (`_runs`); `logs`, `dev`, `plugins restart|test` (`_ops`). `_app`
assembles them under the global options; `_common` holds what they share. Options fall back to
`PLUGBOX_*` environment variables (`host._settings`). Errors are one readable line plus a hint;
`--debug` shows tracebacks. Exit codes: 0 success, 1 a check or an operation failed, 2 usage
error, 3 a plugin or sandbox error. `python -m host.cli` is the `plugbox` console script.
"""

from ._app import app, main

__all__ = ["app", "main"]
