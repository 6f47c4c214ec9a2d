"""CLI layer: operating commands — `plugbox logs NAME [-f]`, `plugbox plugins restart NAME`,
`plugbox plugins test PATH` (the plugin's pytest in its venv: `_plugin_tests`).

Contract: `restart` asks a running `plugbox serve` (`--url`, default `http://127.0.0.1:<port>`)
to restart a plugin through `POST /api/v1/plugins/{name}/restart` and prints its new pid; `logs`
prints the last lines of a plugin's log file under `<data>/logs/` (written by the
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

from .._logs import log_path, read_rotated, render
from .._settings import ENV, Settings

FOLLOW_POLL_S = 0.2  # how often `logs -f` looks for new lines

LogsDataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar=ENV["data_dir"], help="The data directory (.plugbox/)."),
]


def data_dir_outside(data_dir: Path, plugin_dir: Path) -> Path:
    """`data_dir` (absolute), unless it lies inside the plugin's folder (`check .` run in it):
    then the `.plugbox/` beside the plugins root, so venvs are shared, never shipped with it."""
    plugin_dir = plugin_dir.resolve()
    resolved = data_dir.resolve()
    if resolved == plugin_dir or plugin_dir in resolved.parents:
        return plugin_dir.parent.parent / ".plugbox"
    return resolved


def plugin_tests(
    path: Annotated[Path, typer.Argument(help="The plugin's folder (with plugin.toml).")],
    data_dir: LogsDataDir = Path(".plugbox"),
    pytest_args: Annotated[
        list[str] | None, typer.Argument(help="Passed to pytest (after --).", show_default=False)
    ] = None,
) -> None:
    """Run the plugin's own tests with pytest inside a venv holding its requirements."""
    from .._manifest import discover
    from .._plugin_tests import run_plugin_tests

    target = path.resolve()
    found = discover(target.parent)
    manifest = next((m for m in found.manifests.values() if m.directory == target), None)
    if manifest is None:
        problems = [str(e) for e in found.errors if e.path.parent == target]
        sys.stderr.write(
            f"error: {path} is not a valid plugin: {'; '.join(problems) or 'no plugin.toml'}\n"
        )
        raise typer.Exit(1)
    data = data_dir_outside(data_dir, target)

    def progress(message: str) -> None:
        sys.stderr.write(f"  {message}\n")

    code = run_plugin_tests(manifest, data, progress=progress, extra_args=list(pytest_args or []))
    raise typer.Exit(code)


def dev(
    path: Annotated[Path, typer.Argument(help="The plugin's folder (with plugin.toml).")],
    data_dir: LogsDataDir = Path(".plugbox"),
    definition: Annotated[
        Path | None,
        typer.Option("--definition", help='A JSON workflow {"nodes": [...]} (default: examples).'),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run once; do not watch for changes.")
    ] = False,
) -> None:
    """Run one plugin end to end (spec, scripted call, snapshot, completion); rerun on change."""
    import json

    import anyio

    from .._dev import dev_once, fingerprint, print_step, wait_for_change

    target = path.resolve()
    data = data_dir_outside(data_dir, target)
    graph = json.loads(definition.read_text()) if definition is not None else None
    while True:
        seen = fingerprint(target)
        try:
            ok = anyio.run(lambda: dev_once(target, data, print_step, definition=graph))
        except (ValueError, OSError) as exc:
            print_step("error", str(exc))
            ok = False
        if once:
            raise typer.Exit(0 if ok else 1)
        print_step("watching", f"{path} (Ctrl-C to stop)")
        try:
            wait_for_change(target, seen)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
        print_step("changed", "reloading the plugin")


def restart(
    name: Annotated[str, typer.Argument(help="The plugin's name.")],
    url: Annotated[
        str | None,
        typer.Option("--url", help="The running API (default: http://127.0.0.1:$PLUGBOX_PORT)."),
    ] = None,
) -> None:
    """Restart a plugin in a running `plugbox serve` (shutdown ladder, then a fresh process)."""
    import httpx

    base = url or f"http://127.0.0.1:{Settings().port}"
    try:
        reply = httpx.post(f"{base}/api/v1/plugins/{name}/restart", timeout=60)
    except httpx.HTTPError as exc:
        sys.stderr.write(f"error: cannot reach the API at {base}: {exc}\n")
        sys.stderr.write("hint: is `plugbox serve` running? --url points at it\n")
        raise typer.Exit(1) from None
    if reply.status_code != 200:
        detail = reply.json().get("detail", reply.text) if reply.content else reply.reason_phrase
        sys.stderr.write(f"error: {detail}\n")
        raise typer.Exit(3 if reply.status_code == 502 else 1)
    status = reply.json()
    sys.stdout.write(
        f"{name}: {status['state']}, pid {status['pid']}, restarts {status['restarts']}\n"
    )


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
