"""Live call layer, logic only: a plugin queue's batching, overflow, failure and drain.

The plugin behind the queue is a recording coroutine (the seam); the real pipes and processes
are exercised end to end in `test_live_call.py`.
"""

from __future__ import annotations

import anyio
import pytest

from host.runtime._queue import BATCH_SIZE, PluginQueue, RunBridge
from sdk.protocol import LiveEvent, PluginCrashed, PluginError, RuntimeEventsParams

pytestmark = pytest.mark.anyio


class Recorder:
    """Stands for a plugin's pipe: records each notification, optionally blocks or fails."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.batches: list[RuntimeEventsParams] = []
        self.release = anyio.Event()
        self.blocking = False
        self.fail_after = fail_after

    async def send(self, events: list[LiveEvent], dropped: int) -> None:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise PluginCrashed("pipe closed", plugin="recorder", method="runtime.events")
        if self.blocking:
            await self.release.wait()
        self.batches.append(RuntimeEventsParams("s", events, dropped))

    def seqs(self) -> list[int]:
        return [event.seq for batch in self.batches for event in batch.events]


async def pump_until_drained(queue: PluginQueue) -> None:
    """Run the queue's pump, close the queue and wait until what it held was handed over."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(queue.pump)
            await queue.drain(5)


def event(seq: int, kind: str = "llm.text") -> LiveEvent:
    return LiveEvent(kind, seq, float(seq), {"text": "t"})


async def test_a_burst_is_sent_in_order_in_full_batches_and_drained() -> None:
    recorder = Recorder()
    queue = PluginQueue("p", "s", recorder.send)
    for seq in range(1, 1201):
        queue.offer(event(seq))
    await pump_until_drained(queue)
    assert recorder.seqs() == list(range(1, 1201))
    assert [len(b.events) for b in recorder.batches] == [BATCH_SIZE, BATCH_SIZE, 200]
    assert (queue.delivered, queue.dropped) == (1200, 0)


async def test_a_full_queue_drops_and_counts_and_reports_drops_on_the_wire() -> None:
    recorder = Recorder()
    queue = PluginQueue("p", "s", recorder.send, capacity=10)
    for seq in range(1, 26):
        queue.offer(event(seq))
    assert queue.dropped == 15
    await pump_until_drained(queue)
    assert recorder.seqs() == list(range(1, 11))
    assert recorder.batches[0].dropped == 15  # the plugin learns it missed events


async def test_a_plugin_that_fails_loses_its_queue_and_stops_the_pump() -> None:
    recorder = Recorder(fail_after=1)
    queue = PluginQueue("p", "s", recorder.send)
    for seq in range(1, BATCH_SIZE + 51):
        queue.offer(event(seq))
    await pump_until_drained(queue)
    assert isinstance(queue.failure, PluginCrashed)
    assert (queue.delivered, queue.dropped) == (BATCH_SIZE, 50)
    queue.offer(event(10_000))
    assert queue.dropped == 51  # later events are counted, not held


async def test_a_lost_process_is_never_sent_to() -> None:
    recorder = Recorder()
    gone = PluginError("process restarted", plugin="p")
    queue = PluginQueue("p", "s", recorder.send, check=lambda: gone)
    queue.offer(event(1))
    await pump_until_drained(queue)
    assert recorder.batches == []
    assert queue.failure is gone
    assert queue.dropped == 1


async def test_the_drain_deadline_counts_what_a_stuck_plugin_never_took() -> None:
    recorder = Recorder()
    recorder.blocking = True
    queue = PluginQueue("p", "s", recorder.send)
    for seq in range(1, BATCH_SIZE + 11):
        queue.offer(event(seq))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.pump)
            await queue.drain(0.2)
            assert queue.dropped == 10  # the batch in flight is the pipe's; the rest is lost
            recorder.release.set()


async def test_the_bridge_numbers_every_event_and_routes_by_subscription() -> None:
    bridge = RunBridge(7)
    everything = PluginQueue("all", "a", Recorder().send)
    speech = PluginQueue("speech", "b", Recorder().send, subscriptions=frozenset({"user.x"}))
    bridge.add(everything)
    bridge.add(speech)
    for kind in ["llm.text", "user.x", "llm.text", "user.x"]:
        bridge.emit(kind, 1.0, {})
    assert [e.seq for e in everything.events] == [1, 2, 3, 4]
    assert [(e.kind, e.seq) for e in speech.events] == [("user.x", 2), ("user.x", 4)]
    late = PluginQueue("late", "c", Recorder().send)
    bridge.add(late)  # a queue added later is routed from then on
    bridge.emit("llm.text", 2.0, {})
    assert [e.seq for e in late.events] == [5]


async def test_an_idle_pump_wakes_for_each_event_offered_after_it_emptied_the_queue() -> None:
    recorder = Recorder()
    sent = anyio.Event()

    async def send(events: list[LiveEvent], dropped: int) -> None:
        await recorder.send(events, dropped)
        sent.set()

    queue = PluginQueue("p", "s", send)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(queue.pump)
            for seq in range(1, 4):
                await anyio.wait_all_tasks_blocked()  # the pump waits: nothing is queued
                assert not queue.events
                sent = anyio.Event()
                queue.offer(event(seq))
                await sent.wait()  # sent without any drain or close
            await queue.drain(5)
    assert recorder.seqs() == [1, 2, 3]
    assert (queue.delivered, queue.dropped) == (3, 0)
