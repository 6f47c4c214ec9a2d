"""A sync handler that overruns its deadline ends its process, and the next call gets a fresh one
(issue #14). The spinning handler is bounded twice: its own 60 s loop and RLIMIT_CPU (30 s in the
misbehaving manifest; `tests/sandbox/test_hostile.py` proves that limit kills a spinner).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost, ProcessState
from sdk._threads import EXIT_OVERRUN, OVERRUN_GRACE_S
from sdk.protocol import (
    Calls,
    CompletionContextWire,
    CompletionRunParams,
    PingParams,
    PluginTimeout,
)

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"


async def test_a_sync_handler_past_its_deadline_restarts_its_process(tmp_path: Path) -> None:
    config = HostConfig(
        plugins_root=FIXTURES,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"PLUGBOX_TEST_MODE": "spin_sync"},
    )
    context = CompletionContextWire(1, {}, {}, 1)
    params = CompletionRunParams([{"id": "n1", "type": "misbehaving", "data": {}}], context)
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            handle = plugins.get("misbehaving")
            first = await handle.start()
            with pytest.raises(PluginTimeout):
                await handle.call(Calls.COMPLETION_RUN, params, timeout=1.0)
            # The thread cannot be stopped: the process ends itself after the grace.
            with anyio.fail_after(OVERRUN_GRACE_S + 15):
                await first.exited.wait()
            assert first.returncode == EXIT_OVERRUN
            assert "overran its call's deadline" in first.stderr.tail_text()
            assert handle.state is not ProcessState.READY
            pong = await handle.call(Calls.PING, PingParams())  # a fresh process serves
            second = handle.process
            assert second is not None
            assert second is not first
            assert pong.pid > 0
