"""The host on either event loop: a platform may run pipecat, and so the host, on uvloop.

Real sandboxed launches of the `misbehaving` fixture plugin with the host on asyncio's loop and
on uvloop: the launch (a spawner thread, then the child's pipes and its pidfd on the loop), a
call, a crash of the whole sandbox and a second cold launch, then a stop that leaves no process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost, ProcessState
from sdk._loop import loop_name
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
BACKENDS = [
    pytest.param(("asyncio", {}), id="host-asyncio"),
    pytest.param(
        ("asyncio", {"use_uvloop": True}),
        id="host-uvloop",
        marks=pytest.mark.skipif(loop_name() != "uvloop", reason="uvloop is not installed"),
    ),
]
pytestmark = pytest.mark.anyio


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    backend: tuple[str, dict[str, Any]] = request.param
    return backend


async def complete(plugins: PluginHost) -> dict[str, Any]:
    context = CompletionContextWire(1, {}, {}, 1)
    params = CompletionRunParams([{"id": "n1", "type": "misbehaving", "data": {}}], context)
    result = await plugins.get("misbehaving").call(Calls.COMPLETION_RUN, params)
    answer: dict[str, Any] = result.result["n1"]
    return answer


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_the_host_launches_calls_relaunches_and_stops_a_plugin_on_either_loop(
    tmp_path: Path, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    config = HostConfig(
        plugins_root=FIXTURES, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(90):
        async with PluginHost(config) as plugins:
            handle = plugins.get("misbehaving")
            assert (await complete(plugins))["ok"] is True
            first = handle.pid  # the sandbox's outer process, started by the host
            assert first is not None
            ended = anyio.Event()
            handle.on_exit(lambda process, error: ended.set())
            os.kill(first, signal.SIGKILL)  # the whole sandbox: the next call is a cold launch
            await ended.wait()
            assert handle.state is ProcessState.CRASHED
            assert (await complete(plugins))["ok"] is True
            second = handle.pid
            assert second is not None
            assert second != first
            await handle.aclose()
            assert handle.state is ProcessState.STOPPED
    assert gone(first)  # the host reaped both sandboxes it started: no zombie, nothing left
    assert gone(second)
