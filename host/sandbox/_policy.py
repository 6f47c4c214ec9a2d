"""Sandbox layer: the policy, and the layers this machine really has.

Contract: `probe_layers()` tries each layer (a real process under bwrap, a real cgroup created and
removed, after sweeping groups left by dead hosts) and caches the answer. `layers_for(policy)`
says what `launch` uses: layer 1 always (except environment-only under `off`), plus bubblewrap and
the cgroup when the policy and the machine allow:
`strict` refuses to start when a layer is missing (SandboxError saying which and how to get it),
`standard` uses what exists and warns once per missing layer, `off` is for local development and
says so loudly.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sdk.protocol import SandboxError

from ._base import LaunchSpec, SandboxLimits
from ._bwrap import Identity, bwrap_argv, bwrap_path, plugin_identity, setpriv_path
from ._cgroup import PluginCgroup, detect_cgroups, sweep_stale_groups
from ._seccomp import seccomp_fd, seccomp_unavailable

logger = logging.getLogger("plugbox.sandbox")
PROBE_TIMEOUT_S = 10.0  # a bwrap probe is a 50 ms affair; anything slower is broken
LAYER_PROCESS, LAYER_BWRAP, LAYER_CGROUP = "process", "bwrap", "cgroup"
_HINTS = {
    LAYER_BWRAP: "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)",
    LAYER_CGROUP: "run the host as root (or with a delegated cgroup) on a machine with the "
    "memory and pids controllers",
}


class SandboxPolicy(StrEnum):
    strict = "strict"
    standard = "standard"
    process_only = "process-only"  # no bubblewrap, by the operator's explicit choice
    off = "off"


@dataclass(frozen=True)
class LayerStatus:
    name: str
    available: bool
    detail: str
    hint: str = ""


@functools.cache
def probe_layers() -> tuple[LayerStatus, ...]:
    """The layers, each tried for real on this machine (cached per process)."""
    return (
        LayerStatus(LAYER_PROCESS, True, "env allowlist, rlimits, own process group, pdeathsig"),
        _probe_bwrap(),
        _probe_cgroup(),
    )


def _probe_bwrap() -> LayerStatus:
    """The hardened line for real: seccomp filter, no capability, the plugin uid as root."""
    executable = bwrap_path()
    if executable is None:
        return LayerStatus(LAYER_BWRAP, False, "bwrap not found on PATH", _HINTS[LAYER_BWRAP])
    unavailable = seccomp_unavailable()
    identity = plugin_identity("probe")
    if identity.switched and setpriv_path() is None:
        unavailable = "setpriv (util-linux) not found: needed to drop root inside bubblewrap"
    if unavailable is not None:
        return LayerStatus(LAYER_BWRAP, False, unavailable, _HINTS[LAYER_BWRAP])
    try:
        done = _run_probe(executable, identity)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return LayerStatus(LAYER_BWRAP, False, f"bwrap failed to run: {exc}", _HINTS[LAYER_BWRAP])
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()[:200]
        return LayerStatus(LAYER_BWRAP, False, f"bwrap refused: {reason}", _HINTS[LAYER_BWRAP])
    who = f"uid {identity.uid}" if identity.switched else "a user namespace"
    detail = f"{executable}: namespaces for pid, net, ipc, uts; {who}, no capability, seccomp"
    return LayerStatus(LAYER_BWRAP, True, detail)


def _run_probe(executable: str, identity: Identity) -> subprocess.CompletedProcess[bytes]:
    fd = seccomp_fd()
    try:
        with tempfile.TemporaryDirectory(prefix="plugbox-probe-") as scratch:
            where = Path(scratch)
            spec = LaunchSpec("probe", ["/bin/true"], data_dir=where, plugin_dir=where)
            argv = bwrap_argv(
                spec, executable, identity=identity, seccomp_fd=fd, setpriv=setpriv_path()
            )
            return subprocess.run(
                argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, pass_fds=(fd,)
            )
    finally:
        os.close(fd)


def _probe_cgroup() -> LayerStatus:
    support = detect_cgroups()
    if support is None:
        return LayerStatus(
            LAYER_CGROUP, False, "no writable cgroup with memory+pids", _HINTS[LAYER_CGROUP]
        )
    for stale in sweep_stale_groups(support):
        logger.info("removed cgroup %s left by a host that is gone", stale)
    group = PluginCgroup(support, "probe", SandboxLimits(memory_mb=64, pids=8))
    try:
        group.create()
    except OSError as exc:
        return LayerStatus(
            LAYER_CGROUP, False, f"cannot create a group: {exc}", _HINTS[LAYER_CGROUP]
        )
    finally:
        _remove_sync(group)
    cpu = " + cpu quota" if support.cpu is not None else ""
    return LayerStatus(LAYER_CGROUP, True, f"cgroup v{support.version} memory + pids{cpu}")


def _remove_sync(group: PluginCgroup) -> None:
    for directory in group.dirs:
        with contextlib.suppress(OSError):
            directory.rmdir()


def layers_for(policy: SandboxPolicy, *, name: str) -> tuple[str, ...]:
    """The layers to use for one plugin under `policy`; a SandboxError when it refuses.

    `strict` needs bubblewrap and the cgroup layer; `standard` needs bubblewrap (and warns once
    without cgroups); `process-only` is the operator's explicit choice of layer 1 (plus a PID
    namespace and the cgroup where available) on a machine without bubblewrap.
    """
    if policy is SandboxPolicy.off:
        _warn_once(f"sandbox policy 'off': plugin {name!r} runs UNSANDBOXED (development only)")
        return ()
    status = {layer.name: layer for layer in probe_layers()}
    missing = [layer for layer in (LAYER_BWRAP, LAYER_CGROUP) if not status[layer].available]
    if missing and policy is SandboxPolicy.strict:
        details = "; ".join(f"{m}: {status[m].detail} ({status[m].hint})" for m in missing)
        raise SandboxError(
            f"strict sandbox policy refuses to start: missing {details}", plugin=name
        )
    if LAYER_BWRAP in missing and policy is SandboxPolicy.standard:
        raise SandboxError(
            f"standard sandbox policy refuses to start plugin {name!r} without bubblewrap "
            f"({status[LAYER_BWRAP].detail}; {status[LAYER_BWRAP].hint}); run `plugbox doctor` "
            "to see what this machine offers, or choose the policy 'process-only' explicitly "
            "to run plugins with process limits only",
            plugin=name,
            data={"missing": LAYER_BWRAP},
        )
    if policy is SandboxPolicy.process_only:
        _warn_once(f"sandbox policy 'process-only': plugin {name!r} runs without bubblewrap")
        missing.append(LAYER_BWRAP)
    for layer in missing:
        if status[layer].available:
            continue
        _warn_once(
            f"sandbox layer {layer!r} unavailable ({status[layer].detail}); {status[layer].hint}"
        )
    return (
        LAYER_PROCESS,
        *(layer for layer in (LAYER_BWRAP, LAYER_CGROUP) if layer not in missing),
    )


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)
