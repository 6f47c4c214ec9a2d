"""Sandbox layer 3 (when available): a cgroup per plugin for memory and process limits.

Contract: supports cgroup v2 (`memory.max`, `pids.max`, `memory.events`) and v1 as on hybrid
machines (`memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`, `pids.max`,
`memory.oom_control`, `pids.events`). The child joins its group between fork and exec, so no
plugin code runs outside it. The OOM and pids counters say with certainty that a limit killed the
plugin. The group is removed at cleanup (its members killed first, the removal retried while they
exit). A group's name carries the pid of the host that made it (`<plugin>-<host pid>-<random>`),
so `sweep_stale_groups()` at host start removes exactly the groups whose host is dead; several
hosts may share a machine, and another live host's groups are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio

from sdk.protocol import LimitExceeded

from ._base import MIB, SandboxLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP_PARENT = "plugbox"
REMOVE_TRIES = 100  # x 20 ms: SIGKILLed members leave their group as they exit, not at once
DEFAULT_CPU_QUOTA = 1.0  # CPUs a plugin may use at once (cpu controller, where writable)
CPU_PERIOD_US = 100_000
# cgroup v1 weighs each task of the root group as 1024 but the whole plugbox group as one entity:
# with 20 busy host threads, every plugin together got 1/21 of the CPU (a 1 s start took 5 s).
# The group weighs as many busy threads as the machine has CPUs; each plugin keeps its quota.
V1_SHARES_PER_CPU = 1024


@dataclass(frozen=True)
class CgroupSupport:
    version: int  # 1 or 2
    memory: Path  # the directory under which per-plugin memory groups are made
    pids: Path
    cpu: Path | None = None  # where the cpu controller is writable: a CPU quota per plugin


def detect_cgroups(root: Path = CGROUP_ROOT) -> CgroupSupport | None:
    """Which cgroup version is usable here (writable, with memory and pids controllers)."""
    controllers = root / "cgroup.controllers"
    if controllers.exists():
        wanted = {"memory", "pids"} <= set(controllers.read_text().split())
        if wanted and os.access(root, os.W_OK):
            has_cpu = "cpu" in controllers.read_text().split()
            parent = root / GROUP_PARENT
            return CgroupSupport(2, parent, parent, parent if has_cpu else None)
        return None
    memory, pids = root / "memory", root / "pids"
    present = (memory / "memory.limit_in_bytes").exists() and (pids / "cgroup.procs").exists()
    if present and os.access(memory, os.W_OK) and os.access(pids, os.W_OK):
        cpu = root / "cpu"
        has_cpu = (cpu / "cpu.cfs_quota_us").exists() and os.access(cpu, os.W_OK)
        cpu_parent = cpu / GROUP_PARENT if has_cpu else None
        return CgroupSupport(1, memory / GROUP_PARENT, pids / GROUP_PARENT, cpu_parent)
    return None


class PluginCgroup:
    """The group(s) of one plugin process."""

    def __init__(self, support: CgroupSupport, name: str, limits: SandboxLimits) -> None:
        self.support = support
        self.name = name
        self.limits = limits
        leaf = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.memory_dir = support.memory / leaf
        self.pids_dir = support.pids / leaf
        self.cpu_dir = support.cpu / leaf if support.cpu is not None else None
        self.dirs = {self.memory_dir, self.pids_dir} | ({self.cpu_dir} if self.cpu_dir else set())
        self._final: tuple[int, int] | None = None  # (oom kills, pids.max hits) read at removal

    def create(self) -> None:
        if self.support.version == 2:
            _enable_controllers(self.support.memory.parent, self.support.memory)
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self._set_cpu_quota()
        memory = (self.limits.memory_mb or 0) * MIB
        if self.support.version == 2:
            self._write(self.memory_dir / "memory.max", memory or "max")
            self._write(self.memory_dir / "memory.swap.max", 0, optional=True)
        elif memory:
            self._write(self.memory_dir / "memory.limit_in_bytes", memory)
            self._write(self.memory_dir / "memory.memsw.limit_in_bytes", memory, optional=True)
        if self.limits.pids:
            self._write(self.pids_dir / "pids.max", self.limits.pids)

    def _set_cpu_quota(self) -> None:
        if self.cpu_dir is None:
            return
        quota = int((self.limits.cpu_quota or DEFAULT_CPU_QUOTA) * CPU_PERIOD_US)
        if self.support.version == 2:
            self._write(self.cpu_dir / "cpu.max", f"{quota} {CPU_PERIOD_US}", optional=True)
            return
        shares = V1_SHARES_PER_CPU * (os.cpu_count() or 1)
        self._write(self.cpu_dir.parent / "cpu.shares", shares, optional=True)
        self._write(self.cpu_dir / "cpu.cfs_period_us", CPU_PERIOD_US, optional=True)
        self._write(self.cpu_dir / "cpu.cfs_quota_us", quota, optional=True)

    def join_current_process(self) -> None:
        """Runs in the child before exec: move this process into the group(s)."""
        pid = str(os.getpid())
        for directory in self.dirs:
            with open(directory / "cgroup.procs", "w", encoding="ascii") as stream:
                stream.write(pid)

    def kill_members(self) -> None:
        """SIGKILL whatever is left in the group (descendants that left the plugin's session)."""
        for directory in self.dirs:
            _kill_members(directory)

    def counters(self) -> tuple[int, int]:
        if self._final is not None:
            return self._final
        oom = self._counter(self.memory_dir / _oom_file(self.support.version), "oom_kill")
        return oom, self._counter(self.pids_dir / "pids.events", "max")

    def diagnose(self, returncode: int, stderr_tail: str) -> LimitExceeded | None:
        oom_kills, pids_hits = self.counters()
        if oom_kills > 0:
            what = f"memory limit {self.limits.memory_mb} MiB exceeded"
            return LimitExceeded(
                f"plugin {self.name!r} killed: {what}", plugin=self.name, data={"limit": "memory"}
            )
        if pids_hits > 0:
            what = f"process limit {self.limits.pids} exceeded"
            return LimitExceeded(
                f"plugin {self.name!r} stopped: {what}", plugin=self.name, data={"limit": "pids"}
            )
        return None

    async def remove(self) -> None:
        self._final = self.counters()  # the verdict outlives the group
        for directory in self.dirs:
            for _ in range(REMOVE_TRIES):
                if remove_group(directory):
                    break
                await anyio.sleep(0.02)

    @staticmethod
    def _counter(path: Path, key: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    @staticmethod
    def _write(path: Path, value: object, *, optional: bool = False) -> None:
        try:
            path.write_text(str(value))
        except OSError:
            if not optional:
                raise


def _oom_file(version: int) -> str:
    return "memory.events" if version == 2 else "memory.oom_control"


def _enable_controllers(root: Path, parent: Path) -> None:
    parent.mkdir(exist_ok=True)
    for directory in (root, parent):
        with contextlib.suppress(OSError):
            (directory / "cgroup.subtree_control").write_text("+memory +pids")
        with contextlib.suppress(OSError):
            (directory / "cgroup.subtree_control").write_text("+cpu")


def remove_group(directory: Path) -> bool:
    """Kill the group's members and remove it; False while members are still exiting."""
    _kill_members(directory)
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        return exc.errno != errno.EBUSY  # anything but "still busy" is not ours to retry
    return True


def sweep_stale_groups(support: CgroupSupport) -> list[Path]:
    """Remove the plugbox groups whose creating host process is dead; the paths removed."""
    removed = []
    for parent in {support.memory, support.pids} | ({support.cpu} if support.cpu else set()):
        with contextlib.suppress(OSError):
            for directory in parent.iterdir():
                owner = _owner_pid(directory.name)
                if directory.is_dir() and owner is not None and not _alive(owner):
                    for _ in range(REMOVE_TRIES // 10):
                        if remove_group(directory):
                            removed.append(directory)
                            break
                        time.sleep(0.02)  # once, at host start: its members are exiting
    return removed


def _owner_pid(leaf: str) -> int | None:
    parts = leaf.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1])
    return None  # not named by this version: its owner cannot be known, so it is left alone


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
