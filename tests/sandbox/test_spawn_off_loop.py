"""A launch never holds the host's event loop: the fork and the child's steps before exec run in a
spawner thread. Real sandboxed launches; the seam is one extra step before exec (after the
cgroup join) that reports the child's pid and waits for the test to let it go on.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from host._venv import base_interpreter
from host.sandbox import (
    LaunchSpec,
    RunningProcess,
    SandboxLimits,
    SandboxPolicy,
    launch,
    probe_layers,
)
from host.sandbox import _launch as launch_module

LAYERS = {layer.name: layer for layer in probe_layers()}
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not (LAYERS["cgroup"].available and LAYERS["bwrap"].available),
        reason=f"needs the cgroup and bwrap layers: {LAYERS['cgroup']}, {LAYERS['bwrap']}",
    ),
]
HOLD_LIMIT_S = 60  # the held child gives up (and the launch fails) if the test never lets it go


class Hold:
    """Pipes between the test and a child held in its steps before exec."""

    def __init__(self) -> None:
        self.ready_r, self.ready_w = os.pipe()
        self.release_r, self.release_w = os.pipe()

    def step(self) -> None:
        """Runs in the forked child: say its pid, then wait to be released."""
        os.write(self.ready_w, str(os.getpid()).encode())
        if not select.select([self.release_r], [], [], HOLD_LIMIT_S)[0]:
            raise TimeoutError("never released")
        os.read(self.release_r, 1)

    async def held_pid(self) -> int:
        await anyio.wait_readable(self.ready_r)  # on the loop: it must be free to see this
        return int(os.read(self.ready_r, 32))

    def release(self) -> None:
        os.write(self.release_w, b"x")

    def close(self) -> None:
        for fd in (self.ready_r, self.ready_w, self.release_r, self.release_w):
            os.close(fd)


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    held = Hold()
    prepare: Callable[..., None] = launch_module._prepare

    def prepare_and_hold(spec: LaunchSpec, plan: launch_module._Plan) -> None:
        prepare(spec, plan)  # in the spawner thread
        plan.steps.append(("test.hold", held.step))  # after the cgroup join, before the rlimits

    monkeypatch.setattr(launch_module, "_prepare", prepare_and_hold)
    yield held
    held.release()  # a test that failed early must not leave its child held
    held.close()


def plugin_spec(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec(
        "held",
        [str(base_interpreter()), "-c", "print('started', flush=True); input()"],
        tmp_path / "data",
        tmp_path,
        limits=SandboxLimits(memory_mb=256, pids=16),
    )


async def test_the_loop_serves_other_tasks_while_a_launch_is_held_before_exec(
    tmp_path: Path, hold: Hold
) -> None:
    launched: list[RunningProcess] = []

    async def start() -> None:
        launched.append(await launch(plugin_spec(tmp_path), SandboxPolicy.standard))

    with anyio.fail_after(HOLD_LIMIT_S / 2):
        async with anyio.create_task_group() as group:
            group.start_soon(start)
            pid = await hold.held_pid()
            # The child is held between fork and exec: other tasks still run on this loop.
            served = anyio.Event()

            async def other_task() -> None:
                for _ in range(10):
                    await anyio.lowlevel.checkpoint()
                served.set()

            group.start_soon(other_task)
            await served.wait()
            assert not launched
            os.kill(pid, 0)  # still there, still held
            hold.release()
        process = launched[0]
        assert process.pid == pid
        try:
            stdout = await process.open_stdout()
            assert await stdout.receive() == b"started\n"
        finally:
            process.kill_group()
            await process.wait()
            await process.cleanup()


async def test_a_launch_cancelled_before_exec_leaves_no_process(tmp_path: Path, hold: Hold) -> None:
    launched: list[RunningProcess] = []

    async def start() -> None:
        launched.append(await launch(plugin_spec(tmp_path), SandboxPolicy.standard))

    with anyio.fail_after(HOLD_LIMIT_S / 2):
        async with anyio.create_task_group() as group:
            group.start_soon(start)
            pid = await hold.held_pid()
            group.cancel_scope.cancel()  # the launch is cancelled while its child is held
            hold.release()  # it may go on to its exec: the cancelled launch must still end it
    assert not launched
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: not even a zombie is left
