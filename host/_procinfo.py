"""Supervisor layer: the plugin's own process behind its sandbox wrapper, and its memory.

Contract: `plugin_pid(root)` is the pid (in the host's pid namespace) of the process running the
plugin: under bubblewrap the spawned pid is bwrap's, and the plugin runs a few forks below it in a
new pid namespace, so the process tree under `root` is walked (`/proc/<pid>/task/*/children`) for
the deepest process whose command line runs `sdk.serve`; without a wrapper that is `root` itself.
`rss_bytes(pid)` reads `/proc/<pid>/statm`. Both return None when the process is gone.
"""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN_MARKER = b"sdk.serve"  # the plugin's argv: `python -m sdk.serve <package>`
_MAX_WALK = 64  # processes looked at: a sandbox wrapper is a handful, a fork bomb is not our job


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _runs_plugin(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return PLUGIN_MARKER in argv


def plugin_pid(root: int) -> int | None:
    """The deepest process under `root` whose argv runs the plugin, else None.

    The wrappers' own argv carry the plugin's (`bwrap ... -- setpriv ... -- python -m sdk.serve`),
    so the walk goes down while a child still runs it: the last one is the interpreter itself.
    """
    if not _runs_plugin(root):
        return None
    current, looked = root, 1
    while looked < _MAX_WALK:
        below = [pid for pid in children(current) if _runs_plugin(pid)]
        looked += len(below) or 1
        if not below:
            return current
        current = below[0]
    return current


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
