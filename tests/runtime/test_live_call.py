"""Live call path: a scripted call through a real pipecat worker, bridged to real plugins."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from pipecat.frames import frames as f

import host.runtime._sessions as sessions_module
from host import PluginHost
from host.completion import SQLiteRunStore
from host.runtime import (
    LIVE_KEY,
    IntegrationRuntimeContext,
    RunBridge,
    finish_call,
    open_call,
)
from host.runtime._queue import PluginQueue
from plugbox_demo.scripted_call import run_frame_burst, run_scripted_call
from sdk.protocol import EventKind, LiveEvent, PluginError

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_plugins"
SPEECH = {
    "user.started_speaking",
    "user.stopped_speaking",
    "bot.started_speaking",
    "bot.stopped_speaking",
}
SECRET = "recorder-secret-000111"
PROVIDER_KEY = "sk-provider-key-999888"


def graph(*types: str) -> dict[str, Any]:
    nodes = {t: {"id": t, "type": t, "data": {"name": t, "secret": SECRET + t}} for t in types}
    return {"nodes": nodes}


@pytest.fixture
async def env(make_host: HostFactory) -> AsyncIterator[tuple[PluginHost, SQLiteRunStore]]:
    # `stuck` starts only in the tests that call it
    async with make_host(PLUGINS, warm=("recorder_all", "recorder_speech"), deadline_s=90) as env:
        yield env


def recording() -> PluginQueue:
    """A queue with no pump and no plugin behind it: it keeps what it is offered (the seam)."""

    async def never_sent(params: object) -> None:
        raise AssertionError("a recording queue is never pumped")

    return PluginQueue("recording", "s", never_sent, capacity=10**6)


async def test_frames_become_events_once_each_with_the_sibling_rule() -> None:
    bridge = RunBridge(1)
    channel = recording()
    bridge.add(channel)
    await run_scripted_call(attach=bridge.attach)
    kinds = Counter(event.kind for event in channel.events)
    assert kinds[EventKind.CALL_STARTED] == 1
    assert kinds[EventKind.CALL_ENDED] == 1
    assert kinds[EventKind.USER_STARTED_SPEAKING] == 4  # broadcast both ways, counted once
    assert kinds[EventKind.BOT_STARTED_SPEAKING] == kinds[EventKind.BOT_STOPPED_SPEAKING] == 4
    assert kinds[EventKind.TRANSCRIPT_FINAL] == 4
    assert kinds[EventKind.TOOL_CALL_STARTED] == kinds[EventKind.TOOL_CALL_RESULT] == 1
    assert kinds[EventKind.INTERRUPTION] == 1
    assert kinds[EventKind.METRICS_LLM_USAGE] == 4
    seqs = [event.seq for event in channel.events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


async def test_two_plugins_receive_exactly_their_subscribed_events_and_snapshots_persist(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = env
    definition = graph("recorder_all", "recorder_speech")
    run_id = await store.create_run(
        workflow_definition={"nodes": list(definition["nodes"].values())}
    )
    context = IntegrationRuntimeContext(
        workflow_run_id=run_id,
        workflow_graph=definition,
        user_config={"llm": {"api_key": PROVIDER_KEY}},
        context_messages_provider=lambda: [{"role": "user", "content": "hi"}],
    )
    async with open_call(context, plugins=plugins) as sessions:
        assert [s.name for s in sessions] == ["recorder_all", "recorder_speech"]
        everything = recording()
        sessions[0].bridge.add(everything)
        gathered = await run_scripted_call(
            attach=lambda worker: [s.attach(worker) for s in sessions]
        )  # type: ignore[func-returns-value]
        await finish_call(sessions, gathered_context=gathered, store=store, run_id=run_id)
    run = await store.get_run(run_id)
    assert run is not None
    emitted = [[e.kind, e.seq] for e in everything.events]
    assert run.logs["recorder_all"]["events"] == emitted
    assert run.logs["recorder_speech"]["events"] == [e for e in emitted if e[0] in SPEECH]
    assert run.logs["recorder_all"]["messages"] == 1  # context.messages answered by the host
    assert run.logs[LIVE_KEY]["recorder_all"]["dropped"] == 0


async def test_secrets_a_plugin_echoes_in_its_snapshot_are_stored_masked(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = env
    definition = graph("recorder_all", "recorder_speech")
    run_id = await store.create_run(workflow_definition={"nodes": []})
    context = IntegrationRuntimeContext(
        run_id, workflow_graph=definition, user_config={"llm": {"api_key": PROVIDER_KEY}}
    )
    async with open_call(context, plugins=plugins) as sessions:
        await run_scripted_call(attach=lambda worker: [s.attach(worker) for s in sessions])  # type: ignore[func-returns-value]
        logs = await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    seen = logs["recorder_all"]["graph"]["nodes"]
    own = SECRET + "recorder_all"
    assert seen["recorder_all"]["data"]["secret"] == "*" * (len(own) - 4) + own[-4:]
    assert PROVIDER_KEY not in str(logs)
    assert SECRET not in str(logs)


async def test_a_plugin_killed_mid_call_gets_an_error_entry_and_the_other_snapshot_persists(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = env
    definition = graph("recorder_all", "recorder_speech")
    run_id = await store.create_run(workflow_definition={"nodes": []})
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=definition), plugins=plugins
    ) as sessions:
        victim = plugins.get("recorder_speech")
        proc = await victim.start()

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)
            proc.process.kill_group(signal.SIGKILL)  # dies as the call starts

        await run_scripted_call(attach=attach)
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    run = await store.get_run(run_id)
    assert run is not None
    assert run.logs["recorder_all"]["events"]
    entry = run.logs["integration_recorder_speech"]
    assert entry["error"] in {"PluginCrashed", "ConnectionClosed"}
    assert "recorder_speech" in entry["message"]


async def test_a_plugin_that_never_reads_only_loses_its_own_events(
    env: tuple[PluginHost, SQLiteRunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins, store = env
    monkeypatch.setattr(sessions_module, "FINISH_TIMEOUT_S", 0.5)
    definition = graph("recorder_all", "stuck")
    await plugins.get("stuck").start()
    run_id = await store.create_run(workflow_definition={"nodes": []})
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=definition), plugins=plugins
    ) as sessions:
        stuck = next(s for s in sessions if s.name == "stuck")
        assert stuck.queue is not None
        stuck.queue.capacity = 100  # the default holds a minute of a call; keep this test small
        frames = [f.LLMTextFrame("x" * 200) for _ in range(3000)]
        await run_frame_burst(frames, attach=lambda worker: [s.attach(worker) for s in sessions])  # type: ignore[func-returns-value]
        await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    run = await store.get_run(run_id)
    assert run is not None
    live = run.logs[LIVE_KEY]
    assert live["stuck"]["dropped"] > 0
    assert live["stuck"]["status"] == "error"
    assert live["recorder_all"]["dropped"] == 0
    assert len(run.logs["recorder_all"]["events"]) == 3002  # every text frame, start and end


def pumps_running() -> list[asyncio.Task[Any]]:
    """Every live-event pump task still alive in this loop (anyio names a task after its
    function: `...PluginQueue.pump`)."""
    return [task for task in asyncio.all_tasks() if task.get_name().endswith("PluginQueue.pump")]


async def test_calls_that_never_reach_finish_call_leave_no_pump_session_or_provider(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, _ = env
    definition = graph("recorder_all", "recorder_speech")
    client = plugins.client("recorder_all")
    tasks_before = len(asyncio.all_tasks())
    queues: list[PluginQueue] = []
    with anyio.fail_after(60):
        for run_id in range(500):
            context = IntegrationRuntimeContext(run_id, workflow_graph=definition)
            async with open_call(context, plugins=plugins) as sessions:
                assert len(pumps_running()) == 2  # this call's two, none left by earlier calls
                assert list(client._live) == [sessions[0].live.id]  # type: ignore[union-attr]
                queues += [s.queue for s in sessions if s.queue is not None]
                for index in range(3):
                    sessions[0].bridge.emit("user.started_speaking", float(index), {})
            # the call is abandoned: the pipeline raised, the caller hung up, ...
    assert pumps_running() == []
    assert len(asyncio.all_tasks()) == tasks_before
    assert client._live == {}
    assert plugins.client("recorder_speech")._live == {}
    assert len(queues) == 1000
    assert all(q.ended and not q.events for q in queues)
    last = queues[-1]
    dropped = last.dropped
    sessions[0].bridge.emit("user.started_speaking", 9.0, {})  # after its call: dropped, counted
    assert last.dropped == dropped + 1
    with pytest.raises(PluginError, match="call ended"):
        await sessions[0].on_call_finished(gathered_context={})


async def test_a_pump_stuck_on_a_plugin_that_stopped_reading_ends_with_its_call(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, _ = env
    context = IntegrationRuntimeContext(1, workflow_graph=graph("stuck"))
    await plugins.get("stuck").start()
    started: list[int] = []
    returned: list[int] = []
    first_sent, second_started = anyio.Event(), anyio.Event()
    with anyio.fail_after(30):
        async with open_call(context, plugins=plugins) as (stuck,):
            queue = stuck.queue
            assert queue is not None
            send = queue._send

            async def watched(events: list[LiveEvent], dropped: int) -> None:
                started.append(len(events))
                if len(started) == 2:
                    second_started.set()
                await send(events, dropped)
                returned.append(len(events))
                first_sent.set()

            queue._send = watched
            stuck.bridge.emit("transcript.final", 0.0, {"text": "hi"})
            await first_sent.wait()  # the plugin's loop now sleeps in `on_event`
            big = {"text": "x" * 60_000}
            for index in range(200):  # 12 MB in one batch: far beyond the pipe and its buffer
                stuck.bridge.emit("transcript.final", float(index), big)
            await second_started.wait()
            assert len(pumps_running()) == 1
        # no finish_call: leaving the call ends the pump, however stuck its send is
        assert pumps_running() == []
    assert (len(started), len(returned)) == (2, 1)  # it was stuck in the second send
    assert queue.ended
    assert queue.dropped == 200  # the batch that never got through, counted
