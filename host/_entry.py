"""CLI layer: the `plugbox` console script, which names the missing extra instead of crashing.

Contract: `main()` runs `host.cli`; when a dependency of the `host` extra (typer, rich, FastAPI,
...) is not installed, as after a plain `pip install plugbox` (the base set is the SDK's, all a
plugin venv gets), it prints one line naming the extra and exits 2.
"""

from __future__ import annotations

import sys

HINT = "pip install 'plugbox[host]'"


def main() -> None:
    try:
        from .cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in {"host", "sdk"}:
            raise
        sys.stderr.write(
            f"plugbox: the command needs the host extra ({exc.name} is not installed): {HINT}\n"
        )
        raise SystemExit(2) from None
    cli_main()
