"""Supervisor layer: a plugin's data directory held to its `disk_mb` quota (issue #14).

Contract: `disk_usage(path, stop_above)` measures a directory without following symlinks: bytes
are what the files hold on disk (`st_blocks`, so a sparse file counts what it stores, never its
apparent size), every entry also counts `ENTRY_BYTES` (so a million empty files are not free),
and the walk stops once it passes `stop_above` (a hostile tree costs the host a bounded walk).
`check_disk(name, path, disk_mb)` raises `LimitExceeded` (limit `disk`) when the directory is
over its quota: the supervisor calls it before every start, so a plugin over quota is refused
until the operator frees space or raises the grant. `watch_disk(...)` measures every
`DISK_POLL_S` in a worker thread (never on the call's loop) while the plugin runs, and calls
`on_over(error)` once when it passes the quota; the supervisor then kills the process. This is an
accounting check, not a kernel quota: between two polls a plugin can write past its quota by what
its disk takes in `DISK_POLL_S`, each file still capped by `file_size_mb` (RLIMIT_FSIZE).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from sdk.protocol import LimitExceeded

MIB = 1024 * 1024
DISK_POLL_S = 0.5
ENTRY_BYTES = 4096  # each file or directory costs at least an inode and a block


def disk_usage(path: Path, stop_above: int | None = None) -> int:
    """Bytes `path` holds (see the module docstring); at most a little past `stop_above`."""
    total = 0
    pending = [str(path)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue  # removed meanwhile, or unreadable: the plugin's own business
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += max(info.st_blocks * 512, ENTRY_BYTES)
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            if stop_above is not None and total > stop_above:
                return total
    return total


def over_quota(name: str, used: int, disk_mb: int, what: str = "killed") -> LimitExceeded:
    return LimitExceeded(
        f"plugin {name!r} {what}: disk quota {disk_mb} MiB exceeded "
        f"(its data directory holds {used / MIB:.1f} MiB or more)",
        plugin=name,
        data={"limit": "disk", "key": "disk_mb", "used_bytes": used},
    )


async def check_disk(name: str, path: Path, disk_mb: int) -> None:
    """Raise `LimitExceeded` when `path` already holds more than `disk_mb`."""
    used = await anyio.to_thread.run_sync(disk_usage, path, disk_mb * MIB)
    if used > disk_mb * MIB:
        raise over_quota(name, used, disk_mb, "not started")


async def watch_disk(
    name: str,
    path: Path,
    disk_mb: int,
    running: Callable[[], bool],
    on_over: Callable[[LimitExceeded], None],
) -> None:
    """While `running()`, measure `path` every `DISK_POLL_S`; over quota, `on_over` once."""
    limit = disk_mb * MIB
    while running():
        used = await anyio.to_thread.run_sync(disk_usage, path, limit)
        if used > limit:
            on_over(over_quota(name, used, disk_mb))
            return
        await anyio.sleep(DISK_POLL_S)
