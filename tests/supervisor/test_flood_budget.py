"""A plugin's stderr and `log` notifications past the budget are dropped and counted, and the
pump logs a bounded number of lines per loop turn (issue #14). Counts, not timings: the stall
itself is measured by `bench/flood.py`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._stderr import EMIT_BATCH, READ_BYTES, Budget, StderrPump
from sdk.protocol import AsyncioReceiveStream, Calls, CompletionContextWire, CompletionRunParams

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"


def test_the_budget_counts_lines_and_bytes_and_drops_the_rest() -> None:
    lines = Budget(per_s=3, bytes_per_s=10_000)
    assert [lines.take(10) for _ in range(5)] == [True, True, True, False, False]
    assert lines.dropped == 2
    size = Budget(per_s=100, bytes_per_s=250)
    assert [size.take(100) for _ in range(4)] == [True, True, False, False]
    assert size.dropped == 2


def test_refuse_counts_what_take_would_refuse_and_takes_nothing_otherwise() -> None:
    budget = Budget(per_s=2)
    assert budget.refuse() is False  # room left: nothing taken, nothing counted
    assert [budget.take(), budget.take(), budget.take()] == [True, True, False]
    assert [budget.refuse(), budget.refuse()] == [True, True]
    assert budget.dropped == 3


async def test_a_flood_in_one_read_is_counted_and_logged_a_batch_per_loop_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pump = StderrPump("flooder", budget=Budget(per_s=100))
    chunk = b"".join(b"line %d\n" % i for i in range(10_000)) + b"partial"
    steps: list[int] = []
    stop = False

    async def ticker() -> None:
        last = pump.lines
        while not stop:
            await asyncio.sleep(0)
            steps.append(pump.lines - last)
            last = pump.lines

    with caplog.at_level(logging.INFO, logger="plugbox.plugins.flooder"):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            await pump.feed(chunk)
            await pump.feed(b" line\n")  # the partial line completes in the next read
            stop = True
    assert pump.lines == 100  # the budget: the first 100 lines, the rest only counted
    assert pump.budget.dropped == 10_000 - 100 + 1
    assert max(steps) <= EMIT_BATCH
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"line {i}" for i in range(100)]  # the summary waits for the next second


async def test_a_backlog_buffered_by_the_reader_is_counted_one_read_per_loop_turn() -> None:
    # The plugin's stderr reader buffers up to 32 MiB; a read from it never waits while data is
    # buffered, so without a yield per read a flood's whole backlog was counted in one turn.
    reader = asyncio.StreamReader(limit=2**24)
    lines = 400_000
    data = b"".join(b"flood line %06d\n" % i for i in range(lines))  # ~7 MiB, all buffered
    reader.feed_data(data)
    reader.feed_eof()
    pump = StderrPump("flooder", budget=Budget(per_s=10))
    steps: list[int] = []
    done = False

    def counted() -> int:
        return pump.lines + pump.budget.dropped

    async def ticker() -> None:
        last = counted()
        while not done:
            await asyncio.sleep(0)  # exactly one loop turn
            steps.append(counted() - last)
            last = counted()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            await pump.run(AsyncioReceiveStream(reader))
            done = True
    assert counted() == lines
    assert pump.lines == 10
    assert max(steps) <= READ_BYTES // len(b"flood line 000000\n") + 1  # one read's lines
    assert sum(1 for step in steps if step) >= len(data) // READ_BYTES


async def test_a_plugin_flooding_log_notifications_and_stderr_is_budgeted(
    tmp_path: Path,
) -> None:
    config = HostConfig(
        plugins_root=FIXTURES,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"PLUGBOX_TEST_MODE": "log_flood"},
    )
    context = CompletionContextWire(1, {}, {}, 1)
    params = CompletionRunParams([{"id": "n1", "type": "misbehaving", "data": {}}], context)
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            handle = plugins.get("misbehaving")
            result = await handle.call(Calls.COMPLETION_RUN, params)
            assert result.result["n1"]["ok"] is True
            proc = await handle.start()
            session, pump = proc.session, proc.stderr
            # The notifications were sent before the answer, so all have arrived by now.
            assert session.notifications_dropped == handle._log_budget.dropped
            assert session.notifications_dropped >= 5_000 - 2 * 200  # at most two windows pass
    # Stopped: its stderr was read to the end.
    assert pump.lines + pump.budget.dropped >= 20_000
    assert pump.budget.dropped >= 20_000 - 10 * 200
