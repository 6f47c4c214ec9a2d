"""CLI layer: operating commands — `plugbox logs NAME [-f]` (and the shared operating options).

Contract: `logs` prints the last lines of a plugin's log file under `<data>/logs/` (written by the
host that ran the plugin: `serve`, `worker`, `demo`, `check`), as text or as the stored JSON, and
with `-f` keeps printing new lines, across rotations, until interrupted. Everything printed that
a plugin wrote is printed as plain text, never as rich markup.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, TextIO

import typer

from ._logs import log_path, read_rotated, render
from ._settings import ENV

FOLLOW_POLL_S = 0.2  # how often `logs -f` looks for new lines

LogsDataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar=ENV["data_dir"], help="The data directory the host used."),
]


def logs(
    name: Annotated[str, typer.Argument(help="The plugin's name.")],
    data_dir: LogsDataDir = Path(".plugbox"),
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The stored JSON lines.")] = False,
) -> None:
    """The last log lines of one plugin (its own logger, level and tracebacks)."""
    path = log_path(data_dir / "logs", name)
    if not path.exists() and not follow:
        sys.stderr.write(
            f"error: no logs for {name!r} in {path.parent} "
            "(has a host run it with this data dir?)\n"
        )
        raise typer.Exit(1)
    # The open file is both the tail's source and where following starts: no line falls between.
    stream = path.open("r", encoding="utf-8", errors="replace") if path.exists() else None
    content = stream.read() if stream is not None else ""
    *complete, pending = content.split("\n")
    for line in [*read_rotated(path), *complete][-lines:] if lines > 0 else []:
        _write(line, as_json)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            _follow(path, as_json, stream, pending)
    elif stream is not None:
        stream.close()


def _write(line: str, as_json: bool) -> None:
    sys.stdout.write((line if as_json else render(line)) + "\n")
    sys.stdout.flush()


def _follow(path: Path, as_json: bool, stream: TextIO | None, pending: str) -> None:
    """Print lines appended to `path`; reopen it when it is rotated (new inode or shorter)."""
    inode = os.fstat(stream.fileno()).st_ino if stream is not None else None
    while True:
        if stream is None:
            if path.exists():
                stream = path.open("r", encoding="utf-8", errors="replace")
                inode = os.fstat(stream.fileno()).st_ino
            else:
                time.sleep(FOLLOW_POLL_S)
                continue
        chunk = stream.read()
        if chunk:
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                if line:
                    _write(line, as_json)
            continue
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is None or current.st_ino != inode or current.st_size < stream.tell():
            stream.close()
            stream = None
            continue
        time.sleep(FOLLOW_POLL_S)
