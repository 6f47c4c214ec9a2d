"""Sandbox: a hostile program under each layer; every harmful attempt is stopped or denied.

Each hostile behaviour runs only under a limit first proven effective by a smaller attempt. Tests
for bubblewrap and the cgroup layer skip with the reason where the layer is missing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from host._venv import base_interpreter
from host.sandbox import (
    LaunchSpec,
    SandboxLimits,
    SandboxPermissions,
    SandboxPolicy,
    launch,
    probe_layers,
)
from sdk.protocol import LimitExceeded

pytestmark = pytest.mark.anyio
HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
REPO = Path(__file__).resolve().parents[2]
LAYERS = {layer.name: layer for layer in probe_layers()}
needs_bwrap = pytest.mark.skipif(
    not LAYERS["bwrap"].available, reason=f"bubblewrap layer unavailable: {LAYERS['bwrap'].detail}"
)
needs_cgroup = pytest.mark.skipif(
    not LAYERS["cgroup"].available, reason=f"cgroup layer unavailable: {LAYERS['cgroup'].detail}"
)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    limit: LimitExceeded | None
    layers: tuple[str, ...]

    @property
    def result(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.startswith("RESULT ")]
        return lines[-1] if lines else ""


async def run_hostile(
    tmp_path: Path,
    *args: str,
    limits: SandboxLimits | None = None,
    network: bool = False,
    host_env: dict[str, str] | None = None,
) -> Outcome:
    data = tmp_path / "data"
    spec = LaunchSpec(
        name="hostile",
        argv=[str(base_interpreter()), str(HOSTILE / "hostile.py"), *args],
        data_dir=data,
        plugin_dir=HOSTILE,
        limits=limits
        or SandboxLimits(memory_mb=256, cpu_seconds=5, open_files=64, file_size_mb=16, pids=32),
        permissions=SandboxPermissions(network=network),
        host_env=host_env if host_env is not None else dict(os.environ),
    )
    with anyio.fail_after(60):
        process = await launch(spec, SandboxPolicy.standard)
        await process.stdin.aclose()
        stdout, stderr = bytearray(), bytearray()
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, await process.open_stdout(), stdout)
            group.start_soon(_drain, process.stderr, stderr)
            code = await process.wait()
        await process.cleanup()
    tail = stderr.decode(errors="replace")[-4000:]
    return Outcome(code, stdout.decode(), tail, process.diagnose(code, tail), process.layers)


async def _drain(stream: anyio.abc.ByteReceiveStream, sink: bytearray) -> None:
    try:
        while True:
            sink.extend(await stream.receive())
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        return


async def test_the_memory_limit_stops_a_small_excess_then_a_2_gib_allocation(
    tmp_path: Path,
) -> None:
    limits = SandboxLimits(memory_mb=128)
    proof = await run_hostile(tmp_path, "allocate", "300", limits=limits)
    assert proof.limit is not None
    assert proof.limit.limit == "memory"
    outcome = await run_hostile(tmp_path, "allocate", "2048", limits=limits)
    assert outcome.result == ""
    assert outcome.limit is not None
    assert "memory limit 128 MiB exceeded" in str(outcome.limit)


async def test_the_cpu_limit_stops_a_spinning_plugin(tmp_path: Path) -> None:
    outcome = await run_hostile(tmp_path, "spin", limits=SandboxLimits(cpu_seconds=1))
    assert outcome.returncode == -signal.SIGXCPU
    assert outcome.limit is not None
    assert "CPU limit 1 s exceeded" in str(outcome.limit)


async def test_the_open_files_limit_stops_a_file_descriptor_flood(tmp_path: Path) -> None:
    proof = await run_hostile(tmp_path, "files", "100", limits=SandboxLimits(open_files=64))
    assert proof.result.startswith("RESULT denied")
    outcome = await run_hostile(tmp_path, "files", "100000", limits=SandboxLimits(open_files=64))
    assert outcome.result.startswith("RESULT denied")
    assert outcome.limit is not None
    assert "open files limit 64 exceeded" in str(outcome.limit)


async def test_the_file_size_limit_stops_a_1_gib_write(tmp_path: Path) -> None:
    # Python ignores SIGXFSZ, so the write fails with EFBIG ("File too large") instead.
    proof = await run_hostile(tmp_path, "write", "32", limits=SandboxLimits(file_size_mb=16))
    assert proof.limit is not None
    outcome = await run_hostile(tmp_path, "write", "1024", limits=SandboxLimits(file_size_mb=16))
    assert outcome.result == ""
    assert outcome.limit is not None
    assert "file size limit 16 MiB exceeded" in str(outcome.limit)
    assert (tmp_path / "data" / "big.bin").stat().st_size <= 16 * 1024 * 1024


async def test_the_hosts_secrets_are_not_in_the_plugins_environment(tmp_path: Path) -> None:
    env = {**os.environ, "HOST_DATABASE_PASSWORD": "hunter2-db-password"}
    outcome = await run_hostile(tmp_path, "env", "HOST_DATABASE_PASSWORD", host_env=env)
    assert outcome.result == "RESULT denied absent"


@needs_cgroup
async def test_a_fork_bomb_stops_at_the_pids_limit(tmp_path: Path) -> None:
    limits = SandboxLimits(pids=16)
    proof = await run_hostile(tmp_path, "fork", "40", limits=limits)
    assert proof.result.startswith("RESULT denied after")
    outcome = await run_hostile(tmp_path, "fork", "100000", limits=limits)
    assert outcome.result.startswith("RESULT denied after")
    assert int(outcome.result.split()[3]) < 16
    assert outcome.limit is not None
    assert "process limit 16 exceeded" in str(outcome.limit)


@needs_bwrap
async def test_files_of_the_host_working_tree_and_home_are_invisible(tmp_path: Path) -> None:
    for path in (REPO / "pyproject.toml", Path.home() / ".bashrc", Path("/etc/shadow")):
        outcome = await run_hostile(tmp_path, "read", str(path))
        assert outcome.result.startswith("RESULT denied"), (path, outcome.result)
    own = tmp_path / "data" / "mine.txt"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("my own data")
    assert (await run_hostile(tmp_path, "read", str(own))).result == "RESULT ok my own data"


@needs_bwrap
async def test_writing_outside_the_data_directory_is_denied(tmp_path: Path) -> None:
    own_code = await run_hostile(tmp_path, "write_outside", str(HOSTILE / "pwned.txt"))
    assert own_code.result.startswith("RESULT denied")  # its own directory is read-only
    assert not (HOSTILE / "pwned.txt").exists()
    # The host's working tree is not visible; a write there lands in the sandbox's private view
    # (read-only root, or the private /tmp when the tree lives under /tmp) and never on the host.
    await run_hostile(tmp_path, "write_outside", str(REPO / "pwned.txt"))
    assert not (REPO / "pwned.txt").exists()
    assert (await run_hostile(tmp_path, "write_outside", "/usr/pwned")).result.startswith(
        "RESULT denied"
    )
    inside = await run_hostile(tmp_path, "write_outside", str(tmp_path / "data" / "ok.txt"))
    assert inside.result.startswith("RESULT ok")


@needs_bwrap
async def test_network_is_denied_unless_the_manifest_grants_it(tmp_path: Path) -> None:
    accepted = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        accepted.set()
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = str(listener.extra(anyio.abc.SocketAttribute.local_port))
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        denied = await run_hostile(tmp_path, "connect", port, network=False)
        assert denied.result.startswith("RESULT denied")
        assert not accepted.is_set()
        granted = await run_hostile(tmp_path, "connect", port, network=True)
        assert granted.result == "RESULT ok connected"
        group.cancel_scope.cancel()


@needs_bwrap
async def test_killing_its_parents_process_group_cannot_touch_the_host(tmp_path: Path) -> None:
    # Only under a PID namespace: with layer 1 alone a same-user plugin could signal the host.
    outcome = await run_hostile(tmp_path, "kill_parent_group")
    assert "bwrap" in outcome.layers
    assert os.getpid() > 0  # still here: the signal stayed inside the plugin's namespace
