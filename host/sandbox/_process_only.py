"""Sandbox layer 1 without bubblewrap (policy `process-only`): what still closes the host off.

Contract: `process_only_argv(spec)` wraps the plugin's argv in a PID namespace with its own /proc
(util-linux `unshare --pid --fork --mount-proc --kill-child`, with a user namespace when the host
is not root) where the machine allows it, so the plugin cannot see `/proc/<host pid>` (environ,
mem) nor signal the host or its group; the plugin is the namespace's init, so its descendants die
with it. As root, `setpriv` then empties the bounding set (no capability survives the exec) with
no_new_privs. The plugin still runs as the host's uid and sees the host's files: that is what
bubblewrap adds, and why `standard` refuses to start without it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from ._base import LaunchSpec
from ._bwrap import setpriv_path

PROBE_TIMEOUT_S = 10.0


@functools.cache
def pid_namespace_argv() -> tuple[str, ...] | None:
    """The `unshare` prefix if a PID namespace works here (tried once), else None."""
    executable = shutil.which("unshare")
    if executable is None:
        return None
    argv = [executable, "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        argv[1:1] = ["--user", "--map-root-user"]
    try:
        done = subprocess.run(
            [*argv, "--", "true"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (*argv, "--") if done.returncode == 0 else None


def process_only_argv(spec: LaunchSpec) -> list[str]:
    argv = list(spec.argv)
    setpriv = setpriv_path()
    if os.geteuid() == 0 and setpriv is not None:
        argv = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *argv]
    prefix = pid_namespace_argv()
    return [*prefix, *argv] if prefix else argv
