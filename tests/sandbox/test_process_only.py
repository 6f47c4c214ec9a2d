"""Process-only (no bubblewrap, the operator's explicit choice): the host's /proc entry and
process group are out of reach, and the plugin's death is noticed by its pid even when a
setsid grandchild holds its stderr; that grandchild does not outlive it.

Bubblewrap's absence is simulated at the probe seam; everything else is real.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import anyio
import pytest

from host._venv import base_interpreter
from host.sandbox import LaunchSpec, LayerStatus, SandboxLimits, SandboxPolicy, launch
from host.sandbox import _policy as policy_module
from host.sandbox import _process_only as process_only_module
from host.sandbox._process_only import pid_namespace_argv

pytestmark = pytest.mark.anyio
# Harmless probes only: signal 0 tells whether the host could be signalled without signalling it.
SPY = """
import os, sys
host_pid, host_pgid = int(sys.argv[1]), int(sys.argv[2])
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return type(exc).__name__
print("environ", attempt(lambda: open(f"/proc/{host_pid}/environ", "rb").read()))
print("mem", attempt(lambda: open(f"/proc/{host_pid}/mem", "rb").close()))
print("signal_host", attempt(lambda: os.kill(host_pid, 0)))
print("signal_group", attempt(lambda: os.killpg(host_pgid, 0)))
print("own_group", os.getpgid(0) != host_pgid)
"""
HOLDER = """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
        os.execv(sys.executable, sleep + sys.argv[1:])
    os._exit(0)
os.wait()
os._exit(5)
"""


@pytest.fixture(autouse=True)
def without_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    real = {layer.name: layer for layer in policy_module.probe_layers()}
    missing = LayerStatus("bwrap", False, "bwrap not found on PATH", "install bubblewrap")
    layers = (real["process"], missing, real["cgroup"])
    monkeypatch.setattr(policy_module, "probe_layers", lambda: layers)


async def run(tmp_path: Path, script: str, *args: str) -> tuple[int, str]:
    spec = LaunchSpec(
        "spy",
        [str(base_interpreter()), "-c", script, *args],
        tmp_path / "data",
        tmp_path,
        limits=SandboxLimits(memory_mb=256, pids=16),
    )
    with anyio.fail_after(30):  # a missed death would hang here: the failure is a timeout
        process = await launch(spec, SandboxPolicy.process_only)
        assert "bwrap" not in process.layers
        await process.stdin.aclose()
        stdout = await process.open_stdout()
        code = await process.wait()
        output = bytearray()
        try:
            while True:
                output += await stdout.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        await process.cleanup()
    return code, output.decode()


@pytest.mark.skipif(pid_namespace_argv() is None, reason="no PID namespace on this machine")
async def test_the_host_is_out_of_reach_without_bubblewrap(tmp_path: Path) -> None:
    code, output = await run(tmp_path, SPY, str(os.getpid()), str(os.getpgid(0)))
    assert code == 0, output
    seen = dict(line.split(" ", 1) for line in output.splitlines())
    assert seen["environ"] != "ok"
    assert seen["mem"] != "ok"
    assert seen["signal_host"] == "ProcessLookupError"
    assert seen["signal_group"] == "ProcessLookupError"
    assert seen["own_group"] == "True"


@pytest.mark.parametrize("pid_namespace", [True, False])
async def test_a_grandchild_holding_stderr_neither_hides_the_death_nor_outlives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pid_namespace: bool
) -> None:
    if not pid_namespace:  # then only the pidfd and the cgroup's kill stand between
        monkeypatch.setattr(process_only_module, "pid_namespace_argv", lambda: None)
    marker = f"plugbox-holder-{uuid.uuid4().hex}"
    code, _ = await run(tmp_path, HOLDER, marker)
    assert code == 5
    assert survivors(marker) == []


def survivors(marker: str) -> list[str]:
    return [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, marker)]


def _cmdline_has(entry: Path, marker: str) -> bool:
    try:
        return marker.encode() in (entry / "cmdline").read_bytes()
    except OSError:
        return False
