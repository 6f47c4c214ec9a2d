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

from sdk.protocol import LimitExceeded, SandboxError

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


def rlimit_settings(limits: SandboxLimits) -> list[tuple[str, int, int]]:
    """(manifest key, resource, value) triples to apply; soft == hard except for CPU."""
    triples: list[tuple[str, int, int]] = [("core", resource.RLIMIT_CORE, 0)]
    if limits.memory_mb:
        triples.append(("memory_mb", resource.RLIMIT_DATA, limits.memory_mb * MIB))
    if limits.open_files:
        triples.append(("open_files", resource.RLIMIT_NOFILE, limits.open_files))
    if limits.file_size_mb:
        triples.append(("file_size_mb", resource.RLIMIT_FSIZE, limits.file_size_mb * MIB))
    if limits.cpu_seconds:
        triples.append(("cpu_seconds", resource.RLIMIT_CPU, limits.cpu_seconds + _CPU_GRACE_S))
    return triples


def check_rlimits(name: str, limits: SandboxLimits) -> None:
    """Refuse limits this host cannot set (above its hard limit): a SandboxError naming the key.

    Checked before any fork, so one manifest value can never fail a spawn half-way (issue #14).
    """
    for key, kind, value in rlimit_settings(limits):
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY and value > hard:
            shown = value // MIB if key.endswith("_mb") else value
            raise SandboxError(
                f"plugin {name!r}: limits.{key} = {shown} is above this host's hard limit "
                f"({hard // MIB if key.endswith('_mb') else hard}); lower it in plugin.toml",
                plugin=name,
                data={"key": f"limits.{key}", "hard_limit": hard},
            )


def make_preexec(
    limits: SandboxLimits,
    extra: list[tuple[str, Callable[[], None]]] | None = None,
    report_fd: int | None = None,
) -> Callable[[], None]:
    """The function the child runs between fork and exec (async-signal-safe enough: no locks).

    If a step fails, its name ("cgroup", "limits.open_files", ...) is written to `report_fd`, so
    the parent can say which key broke the start.
    """
    triples = rlimit_settings(limits)
    libc = ctypes.CDLL(None, use_errno=True)
    steps = list(extra or [])

    def preexec() -> None:
        stage = "session"
        try:
            os.setsid()
            os.umask(0o077)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            for name, step in steps:  # first: joining a cgroup opens files (NOFILE comes after)
                stage = name
                step()
            for key, kind, value in triples:
                stage = f"limits.{key}"
                soft = value - _CPU_GRACE_S if kind == resource.RLIMIT_CPU else value
                resource.setrlimit(kind, (soft, value))
        except BaseException:
            if report_fd is not None:
                os.write(report_fd, stage.encode())
            raise

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
