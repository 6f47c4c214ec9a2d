"""The wire on both event loops: a real child process serving `echo` on uvloop or asyncio's loop
(chosen the way a plugin chooses, by `sdk._loop`), called by a host on either loop, sequentially
and with many calls in flight (the held-frame path on both sides), answered by a coroutine in a
task per request or by an inline function in the data callback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
import pytest

from sdk._loop import loop_name
from sdk.protocol import AsyncioSendStream, RpcSession, open_pipe_stream

ROOT = str(Path(__file__).resolve().parents[2])
CHILD = """
import asyncio, sys
from sdk._loop import run
from sdk._stdio import claim_stdio, open_wire
from sdk.protocol import RpcSession

async def serve(wire):
    session = RpcSession(await open_wire(wire), name="host")

    async def echo(params):
        return {**params, "loop": type(asyncio.get_running_loop()).__module__.split(".")[0]}

    def echo_inline(params):  # answered in the data callback, no task
        return {**params, "loop": type(asyncio.get_running_loop()).__module__.split(".")[0]}

    session.on_request("echo", echo)
    session.on_request_inline("echo_inline", echo_inline)
    await session.run()

run(serve, claim_stdio())
"""

needs_uvloop = pytest.mark.skipif(loop_name() != "uvloop", reason="uvloop is not installed")


def _child_loop(plugin_loop: str) -> str:
    code = "import asyncio; from sdk._loop import run\n"
    code += "async def f(): return type(asyncio.get_running_loop()).__module__\nprint(run(f))"
    env = {**os.environ, "PYTHONPATH": ROOT, "PLUGBOX_LOOP": plugin_loop}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    return done.stdout.decode().strip()


@needs_uvloop
def test_a_plugin_runs_on_uvloop_unless_told_to_use_asyncio() -> None:
    assert _child_loop("auto") == "uvloop"
    assert _child_loop("asyncio").startswith("asyncio")


async def _calls(plugin_loop: str) -> list[Any]:
    read_fd, write_fd = os.pipe()
    env = {"PYTHONPATH": ROOT, "PLUGBOX_LOOP": plugin_loop}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, env=env, stdin=PIPE, stdout=write_fd
    )
    os.close(write_fd)
    assert process.stdin is not None
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", buffering=0), AsyncioSendStream(process.stdin)
    )
    answers: list[Any] = []
    with anyio.fail_after(60):
        async with RpcSession(stream, name="plugin") as session:
            answers.append(await session.request("echo", {"n": -1}, timeout=30))

            answers.append(await session.request("echo_inline", {"n": -2}, timeout=30))

            async def call(n: int) -> None:
                method = "echo_inline" if n % 2 else "echo"  # a task per request, or none
                answers.append(await session.request(method, {"n": n}, timeout=30))

            async with anyio.create_task_group() as group:
                for n in range(300):
                    group.start_soon(call, n)
        await process.wait()
    return answers


@needs_uvloop
@pytest.mark.parametrize("host_uvloop", [False, True], ids=["host-asyncio", "host-uvloop"])
@pytest.mark.parametrize("plugin_loop", ["uvloop", "asyncio"])
def test_calls_cross_the_pipe_on_either_loop_in_flight_or_alone(
    host_uvloop: bool, plugin_loop: str
) -> None:
    answers = anyio.run(_calls, plugin_loop, backend_options={"use_uvloop": host_uvloop})
    assert sorted(a["n"] for a in answers) == list(range(-2, 300))
    assert {a["loop"] for a in answers} == {"uvloop" if plugin_loop == "uvloop" else "asyncio"}
