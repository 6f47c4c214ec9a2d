"""Leftovers: no cgroup and no process outlives its plugin — after crashes (with a setsid
grandchild holding on), after failed spawns, and after a host that died (the start-up sweep)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import anyio
import pytest

from host._venv import base_interpreter
from host.sandbox import LaunchSpec, SandboxLimits, SandboxPolicy, launch, probe_layers
from host.sandbox import _spawn as spawn_module
from host.sandbox._cgroup import detect_cgroups, sweep_stale_groups
from sdk.protocol import SandboxError

LAYERS = {layer.name: layer for layer in probe_layers()}
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not (LAYERS["cgroup"].available and LAYERS["bwrap"].available),
        reason=f"needs the cgroup and bwrap layers: {LAYERS['cgroup']}, {LAYERS['bwrap']}",
    ),
]
# The plugin double-forks a grandchild into its own session (it would outlive a plain kill of
# the plugin), then exits with 3. The marker in argv finds any survivor in /proc.
CRASH = """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
        os.execv(sys.executable, sleep + sys.argv[1:])
    os._exit(0)
os.wait()
os._exit(3)
"""


def our_groups() -> list[Path]:
    support = detect_cgroups()
    assert support is not None
    mine = f"-{os.getpid()}-"
    return [
        d
        for parent in {support.memory, support.pids}
        if parent.is_dir()
        for d in parent.iterdir()
        if mine in d.name
    ]


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def crash_once(tmp_path: Path, marker: str) -> int:
    spec = LaunchSpec(
        "crasher",
        [str(base_interpreter()), "-c", CRASH, marker],
        tmp_path / "data",
        tmp_path,
        limits=SandboxLimits(memory_mb=256, pids=16),
    )
    process = await launch(spec, SandboxPolicy.standard)
    await process.stdin.aclose()
    code = await process.wait()
    await process.cleanup()
    return code


async def test_after_50_crashes_and_failed_spawns_no_cgroup_and_no_process_remains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"plugbox-crash-{uuid.uuid4().hex}"
    before = our_groups()
    with anyio.fail_after(240):
        for _ in range(25):
            assert await crash_once(tmp_path, marker) == 3

        def no_fork(*args: object, **kwargs: object) -> None:  # the seam: fork fails
            raise BlockingIOError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(spawn_module, "_popen", no_fork)
        for _ in range(25):
            with pytest.raises(SandboxError) as caught:
                await crash_once(tmp_path, marker)
            assert caught.value.data["key"] == "exec"
    assert our_groups() == before == []
    assert processes_with(marker) == []


def test_the_start_up_sweep_removes_only_groups_whose_host_is_dead() -> None:
    support = detect_cgroups()
    assert support is not None
    dead_pid = _exited_pid()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        dead = support.memory / f"stale-{dead_pid}-0000dead"
        live = support.memory / f"other-{alive.pid}-0000a11e"
        legacy = support.memory / "legacy-0000beef"  # no host pid: owner unknown, left alone
        for directory in (live, legacy):
            directory.mkdir(parents=True)
        for _ in range(3):
            dead.mkdir(parents=True, exist_ok=True)
            removed = sweep_stale_groups(support)
            if dead in removed:
                break
            # Another host process starting meanwhile (a CLI under test, another xdist worker's
            # probe) ran its own sweep between the mkdir and ours: try again.
        assert dead in removed
        assert not dead.exists()
        assert live.exists()
        assert legacy.exists()
    finally:
        alive.kill()
        alive.wait()
        for directory in (live, legacy, dead):
            if directory.exists():
                directory.rmdir()


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


SPIN = """
import os, threading, time
def spin():
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        pass
threads = [threading.Thread(target=spin) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(sum(os.times()[:2]))
"""


async def test_the_cpu_quota_holds_a_spinning_plugin_to_its_share(tmp_path: Path) -> None:
    support = detect_cgroups()
    assert support is not None
    if support.cpu is None:
        pytest.skip("no writable cpu controller here")
    spec = LaunchSpec(
        "spinner",
        [str(base_interpreter()), "-c", SPIN],
        tmp_path / "data",
        tmp_path,
        limits=SandboxLimits(pids=16, cpu_quota=0.05),
    )
    with anyio.fail_after(60):
        process = await launch(spec, SandboxPolicy.standard)
        await process.stdin.aclose()
        stdout = await process.open_stdout()
        assert await process.wait() == 0
        cpu_seconds = float((await stdout.receive()).decode())
        stat = (group_dir(support.cpu, "spinner") / "cpu.stat").read_text()
        await process.cleanup()
    throttled = dict(line.split() for line in stat.splitlines())["nr_throttled"]
    assert int(throttled) > 0  # the quota, not the machine's load, held it back
    # Two threads spinning 1.5 s of wall time could use 3 CPU-seconds; 0.05 CPU allows ~0.08.
    assert cpu_seconds < 0.3


def group_dir(parent: Path, plugin: str) -> Path:
    (found,) = [d for d in parent.iterdir() if d.name.startswith(f"{plugin}-{os.getpid()}-")]
    return found
