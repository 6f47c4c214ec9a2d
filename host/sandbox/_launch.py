"""Sandbox layer: the spawn path — `launch(spec, policy)` starts one plugin under its layers.

Contract: all of a start's blocking work runs in a spawner thread (`_spawn`), so the host's loop
never waits on it: the limits are checked against this host's hard limits before anything is
created (`SandboxError` naming the key); the cgroup is created, the data directory given to the
plugin's uid, the bubblewrap command line and seccomp fd prepared; then one fork whose child
joins the cgroup, then lowers its rlimits, then execs. Any failure on the way is a
`SandboxError` naming the plugin and the key or stage that failed ("limits.open_files",
"cgroup", "exec"), and everything created for the start (cgroup, fds) is removed before it is
raised.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from sdk.protocol import SandboxError

from ._base import Diagnoser, LaunchSpec, RunningProcess, SandboxLimits
from ._bwrap import bwrap_argv, bwrap_path, give_data_dir, plugin_identity, setpriv_path
from ._cgroup import PluginCgroup, detect_cgroups
from ._limits import check_rlimits, diagnose_rlimits, make_preexec, plugin_environment
from ._policy import LAYER_BWRAP, LAYER_CGROUP, SandboxPolicy, layers_for
from ._process_only import process_only_argv
from ._seccomp import seccomp_fd
from ._spawn import popen_child, spawn

Cleanup = Callable[[], Awaitable[None]]


@dataclass
class _Plan:
    """What one start needs: the command, the child's steps, and what to undo afterwards."""

    argv: list[str]
    layers: tuple[str, ...]
    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    diagnosers: list[Diagnoser] = field(default_factory=list)
    cleanups: list[Cleanup] = field(default_factory=list)
    exit_hooks: list[Callable[[], None]] = field(default_factory=list)
    pass_fds: tuple[int, ...] = ()

    async def undo(self) -> None:
        self.close_fds()
        for step in self.cleanups:
            await step()

    def close_fds(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = ()


async def launch(
    spec: LaunchSpec, policy: SandboxPolicy = SandboxPolicy.standard
) -> RunningProcess:
    """Start the plugin process under the layers the policy and the machine give."""
    plan = _Plan(spec.argv, ())
    try:
        return await _spawn(spec, plan, policy)
    except BaseException as exc:
        with contextlib.suppress(Exception), anyio.CancelScope(shield=True):
            await plan.undo()  # also when cancelled: the cgroup must not outlive the start
        if isinstance(exc, (OSError, subprocess.SubprocessError)):
            raise _start_error(spec.name, "spawn", exc) from exc
        raise
    finally:
        plan.close_fds()


def _plan(spec: LaunchSpec, plan: _Plan, policy: SandboxPolicy) -> SandboxLimits:
    """The start's blocking set-up (in the spawner thread): layers, limits, cgroup, command."""
    plan.layers = layers_for(policy, name=spec.name)
    limits = spec.limits if plan.layers else SandboxLimits()
    check_rlimits(spec.name, limits)
    try:
        _prepare(spec, plan)
        spec.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # not the child's: no step of it ran
        raise _start_error(spec.name, "spawn", exc) from exc
    return limits


def _prepare(spec: LaunchSpec, plan: _Plan) -> None:
    if not plan.layers:
        return
    plan.diagnosers.append(diagnose_rlimits(spec.name, spec.limits))
    if LAYER_CGROUP in plan.layers:
        support = detect_cgroups()
        if support is None:
            raise SandboxError(f"plugin {spec.name!r}: cgroup layer vanished", plugin=spec.name)
        group = PluginCgroup(support, spec.name, spec.limits)
        plan.cleanups.append(group.remove)
        try:
            group.create()
        except OSError as exc:
            raise _start_error(spec.name, "cgroup", exc) from exc
        plan.steps.append(("cgroup", group.join_current_process))
        plan.exit_hooks.append(group.kill_members)
        plan.diagnosers.insert(0, group.diagnose)
    if LAYER_BWRAP not in plan.layers:
        plan.argv = process_only_argv(spec)
        return
    executable = bwrap_path()
    if executable is None:
        raise SandboxError(f"plugin {spec.name!r}: bwrap vanished", plugin=spec.name)
    identity = plugin_identity(spec.name)
    give_data_dir(spec, identity)
    fd = seccomp_fd()
    plan.pass_fds = (fd,)
    plan.argv = bwrap_argv(
        spec, executable, identity=identity, seccomp_fd=fd, setpriv=setpriv_path()
    )


async def _spawn(spec: LaunchSpec, plan: _Plan, policy: SandboxPolicy) -> RunningProcess:
    # Our own pipe for stdout, so the wire can be decoded in the loop's data callback (asyncio's
    # subprocess pipes only offer a StreamReader, one task wake-up per message further away).
    read_fd, write_fd = os.pipe()
    stdout = os.fdopen(read_fd, "rb", buffering=0)
    report_read, report_write = os.pipe()  # the child names the step that failed, if one does

    def start() -> subprocess.Popen[bytes]:
        limits = _plan(spec, plan, policy)
        return popen_child(
            plan.argv,
            stdout=write_fd,
            cwd=spec.data_dir,
            env=plugin_environment(spec),
            preexec_fn=make_preexec(limits, plan.steps, report_write),
            pass_fds=(*plan.pass_fds, *spec.pass_fds),
        )

    try:
        # Off the loop: the set-up, forking the host and the child's steps before exec take
        # ~20 ms, during which the loop serves live calls (`spawn` waits for `start` even when
        # cancelled, so the fds closed below are never closed under it).
        process = await spawn(start)
    except (OSError, subprocess.SubprocessError) as exc:
        stdout.close()
        os.close(report_write)
        report_write = -1
        stage = os.read(report_read, 200).decode(errors="replace") or "exec"
        raise _start_error(spec.name, stage, exc) from exc
    except BaseException:
        stdout.close()
        raise
    finally:
        os.close(write_fd)  # the child holds its copy; ours would hide the child's EOF
        if report_write >= 0:
            os.close(report_write)
        os.close(report_read)
    return RunningProcess(
        process,
        stdout,
        name=spec.name,
        layers=plan.layers,
        diagnosers=plan.diagnosers,
        cleanups=plan.cleanups,
        exit_hooks=plan.exit_hooks,
    )


def _start_error(name: str, key: str, exc: BaseException) -> SandboxError:
    return SandboxError(
        f"plugin {name!r} could not be started: {key} failed ({exc})",
        plugin=name,
        data={"key": key},
    )
