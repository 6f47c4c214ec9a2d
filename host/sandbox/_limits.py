"""Sandbox layer 1 (always on): environment allowlist, rlimits, process group, parent death.

Contract: a plugin sees only PATH, LANG, LC_ALL, TZ, a HOME inside its data directory, the
`PLUGBOX_*` variables the supervisor sets, and the host environment keys its manifest names. In
the child, before exec: a new session (own process group), umask 077, PR_SET_PDEATHSIG(SIGKILL)
so it dies with the host, RLIMIT_DATA/CPU/NOFILE/FSIZE from the manifest and no core dumps.
Deaths by SIGXCPU/SIGXFSZ or a `MemoryError` are diagnosed as the limit that caused them.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from collections.abc import Callable

from sdk.protocol import LimitExceeded

from ._base import MIB, LaunchSpec, SandboxLimits

BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")
_PR_SET_PDEATHSIG = 1
_CPU_GRACE_S = 1  # the hard CPU limit follows the soft one: SIGXCPU first, SIGKILL after


def plugin_environment(spec: LaunchSpec) -> dict[str, str]:
    """The allowlisted environment: base keys, declared keys, then the supervisor's own."""
    env = {key: spec.host_env[key] for key in BASE_ENV_KEYS if key in spec.host_env}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(spec.data_dir)
    env["TMPDIR"] = "/tmp"
    for key in spec.permissions.env_keys:
        if key in spec.host_env:
            env[key] = spec.host_env[key]
    env.update(spec.env)
    return env


def rlimit_settings(limits: SandboxLimits) -> list[tuple[int, int]]:
    """(resource, value) pairs to apply; soft == hard except for CPU."""
    pairs: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    if limits.memory_mb:
        pairs.append((resource.RLIMIT_DATA, limits.memory_mb * MIB))
    if limits.open_files:
        pairs.append((resource.RLIMIT_NOFILE, limits.open_files))
    if limits.file_size_mb:
        pairs.append((resource.RLIMIT_FSIZE, limits.file_size_mb * MIB))
    return pairs


def make_preexec(
    limits: SandboxLimits, extra: list[Callable[[], None]] | None = None
) -> Callable[[], None]:
    """The function the child runs between fork and exec (async-signal-safe enough: no locks)."""
    pairs = rlimit_settings(limits)
    cpu = limits.cpu_seconds
    libc = ctypes.CDLL(None, use_errno=True)
    steps = list(extra or [])

    def preexec() -> None:
        os.setsid()
        os.umask(0o077)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for step in steps:  # first: joining a cgroup opens files, which a low NOFILE would stop
            step()
        for kind, value in pairs:
            resource.setrlimit(kind, (value, value))
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + _CPU_GRACE_S))

    return preexec


def diagnose_rlimits(
    name: str, limits: SandboxLimits
) -> Callable[[int, str], LimitExceeded | None]:
    """Map a death to the rlimit behind it, from the signal or the last lines of stderr."""

    def diagnose(returncode: int, stderr_tail: str) -> LimitExceeded | None:
        if returncode == -signal.SIGXCPU:
            return _exceeded(name, "cpu", f"CPU limit {limits.cpu_seconds} s exceeded")
        if returncode == -signal.SIGXFSZ or "File too large" in stderr_tail:
            return _exceeded(
                name, "file_size", f"file size limit {limits.file_size_mb} MiB exceeded"
            )
        if "MemoryError" in stderr_tail and limits.memory_mb:
            return _exceeded(name, "memory", f"memory limit {limits.memory_mb} MiB exceeded")
        if "Too many open files" in stderr_tail and limits.open_files:
            return _exceeded(name, "open_files", f"open files limit {limits.open_files} exceeded")
        return None

    return diagnose


def _exceeded(name: str, limit: str, what: str) -> LimitExceeded:
    return LimitExceeded(f"plugin {name!r} killed: {what}", plugin=name, data={"limit": limit})
