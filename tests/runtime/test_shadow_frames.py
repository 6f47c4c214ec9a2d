"""Shadow task frames: the host's encoding, rebuilt with pipecat and with stand-ins (no pipecat)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pipecat.frames import frames as f
from pipecat.metrics.metrics import LLMTokenUsage, LLMUsageMetricsData
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection

from host.runtime import RunBridge
from host.runtime._frames import FrameFilter, encode_frame
from host.runtime._queue import PluginQueue
from plugbox_demo.scripted_call import run_frame_burst, run_scripted_call
from sdk import ShadowTask
from sdk._rebuild import Rebuilder, StandInFrame
from sdk.protocol import EventKind, LiveEvent

pytestmark = pytest.mark.anyio


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def pushed(frame: Any, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> FramePushed:
    return FramePushed(Named("LLM#0"), Named("TTS#0"), frame, direction, 1_234_567)


def usage_frame() -> f.MetricsFrame:
    usage = LLMTokenUsage(prompt_tokens=11, completion_tokens=7, total_tokens=18)
    return f.MetricsFrame(data=[LLMUsageMetricsData(processor="LLM#0", model="m", value=usage)])


def test_a_rebuilt_frame_is_a_real_pipecat_frame_with_the_host_ids_and_nested_models() -> None:
    frame = usage_frame()
    payload, carried = encode_frame(pushed(frame))
    assert carried == 0
    task = ShadowTask(Rebuilder(pipecat=True))
    again = task.rebuilder.pushed(payload, task.processor)
    assert isinstance(again, FramePushed)
    assert isinstance(again.frame, f.MetricsFrame)
    assert again.frame.id == frame.id
    assert again.frame.name == frame.name
    item = again.frame.data[0]
    assert isinstance(item, LLMUsageMetricsData)
    assert isinstance(item.value, LLMTokenUsage)
    assert item.value.total_tokens == 18
    assert again.source.name == "LLM#0"
    assert again.source is task.processor("LLM#0")
    assert again.direction is FrameDirection.DOWNSTREAM
    assert again.timestamp == 1_234_567


def test_frames_of_one_class_rebuilt_in_turn_each_keep_their_own_fields() -> None:
    """The rebuilder learns a dataclass's constructor fields once per class: every later frame of
    that class still gets its own values, init fields and the rest alike."""
    task = ShadowTask(Rebuilder(pipecat=True))
    frames = [
        f.TranscriptionFrame(text=f"said {n}", user_id=f"u{n}", timestamp=f"t{n}") for n in range(3)
    ]
    for frame in frames:
        frame.finalized = frame.user_id == "u1"  # a field outside the constructor
    rebuilt = [task.rebuilder.pushed(encode_frame(pushed(fr))[0], task.processor) for fr in frames]
    for frame, again in zip(frames, rebuilt, strict=True):
        assert isinstance(again.frame, f.TranscriptionFrame)
        assert (again.frame.text, again.frame.user_id) == (frame.text, frame.user_id)
        assert (again.frame.id, again.frame.name) == (frame.id, frame.name)
        assert again.frame.finalized is frame.finalized


def test_without_pipecat_frames_are_stand_ins_with_the_same_attribute_names() -> None:
    rebuilder = Rebuilder(pipecat=False)
    task = ShadowTask(rebuilder)
    text = rebuilder.pushed(
        encode_frame(pushed(f.TranscriptionFrame("hi", "u1", "t0")))[0], task.processor
    )
    assert isinstance(text.frame, StandInFrame)
    assert type(text.frame).__name__ == "TranscriptionFrame"
    assert (text.frame.text, text.frame.user_id) == ("hi", "u1")
    assert text.direction == 1
    assert text.direction.name == "DOWNSTREAM"
    metrics = rebuilder.pushed(encode_frame(pushed(usage_frame()))[0], task.processor)
    item = metrics.frame.data[0]
    assert type(item).__name__ == "LLMUsageMetricsData"
    assert item.value.prompt_tokens == 11


def test_unknown_frame_classes_are_skipped_and_counted() -> None:
    seen: list[Any] = []

    class Observer:
        async def on_push_frame(self, data: Any) -> None:
            seen.append(data.frame)

    payload, _ = encode_frame(pushed(f.TextFrame("x")))
    unknown = {**payload, "cls": "NotAFrame", "module": "pipecat.frames.frames"}
    foreign = {**payload, "cls": "Evil", "module": "os"}  # never imported: not under pipecat.
    task = ShadowTask(Rebuilder(pipecat=True))
    task.add_observer(Observer())
    events = [
        LiveEvent(EventKind.FRAME, i, 0.0, p) for i, p in enumerate([payload, unknown, foreign])
    ]
    anyio.run(task.deliver, events)
    assert [type(frame).__name__ for frame in seen] == ["TextFrame"]
    assert task.frames_skipped == {"NotAFrame": 1, "Evil": 1}


def test_audio_frames_only_on_request_and_within_the_byte_budget() -> None:
    audio = f.OutputAudioRawFrame(b"\x01\x02" * 160, sample_rate=16000, num_channels=1)
    default, budgeted = FrameFilter(), FrameFilter(audio=True, audio_budget_bytes=700)
    assert not default.wants(type(audio))
    assert default.wants(f.TextFrame)
    assert budgeted.wants(type(audio))
    payload, carried = encode_frame(pushed(audio), audio=True)
    assert carried == 320
    assert budgeted.spend(carried)
    assert budgeted.spend(carried)
    assert not budgeted.spend(carried)
    again = Rebuilder(pipecat=True).frame(payload, lambda name: None)
    assert isinstance(again, f.OutputAudioRawFrame)
    assert again.audio == audio.audio
    only_text = FrameFilter(("TextFrame",))
    assert only_text.wants(f.TranscriptionFrame)
    assert not only_text.wants(f.MetricsFrame)


async def test_the_bridge_sends_frames_only_to_plugins_with_a_shadow_task() -> None:
    async def never(events: Any, dropped: int) -> None:
        raise AssertionError("not pumped")

    plain = PluginQueue("plain", "a", never, capacity=10**6)
    shadow = PluginQueue("shadow", "b", never, capacity=10**6, frames=FrameFilter(("TextFrame",)))
    bridge = RunBridge(1)
    bridge.add(plain)
    bridge.add(shadow)
    await run_scripted_call(attach=bridge.attach)
    assert not [e for e in plain.events if e.kind in {EventKind.FRAME, EventKind.TASK_EVENT}]
    frames = [e for e in shadow.events if e.kind == EventKind.FRAME]
    assert frames
    assert all(
        e.data["cls"].endswith("TextFrame") or "Transcription" in e.data["cls"] for e in frames
    )
    names = [e.data["name"] for e in shadow.events if e.kind == EventKind.TASK_EVENT]
    assert names == ["on_pipeline_started", "on_pipeline_finished"]
    seqs = [e.seq for e in shadow.events]
    assert seqs == sorted(seqs)


async def test_audio_reaches_only_the_plugin_that_asked_until_its_budget_is_spent() -> None:
    async def never(events: Any, dropped: int) -> None:
        raise AssertionError("not pumped")

    chunk = b"\x00\x01" * 320  # 20 ms of 16 kHz mono
    listener = PluginQueue(
        "listener",
        "a",
        never,
        capacity=10**6,
        frames=FrameFilter(audio=True, audio_budget_bytes=6400),
    )
    deaf = PluginQueue("deaf", "b", never, capacity=10**6, frames=FrameFilter())
    bridge = RunBridge(1)
    bridge.add(listener)
    bridge.add(deaf)
    burst = [f.OutputAudioRawFrame(chunk, sample_rate=16000, num_channels=1) for _ in range(25)]
    await run_frame_burst(burst, attach=bridge.attach)
    heard = [e for e in listener.events if e.data.get("cls") == "OutputAudioRawFrame"]
    assert len(heard) == 10  # 10 x 640 bytes fill the 6,400-byte budget
    assert listener.audio_over == 15
    assert listener.dropped == 15
    assert not [e for e in deaf.events if e.data.get("cls") == "OutputAudioRawFrame"]
    assert [e.data["cls"] for e in deaf.events if e.kind == EventKind.FRAME] == [
        "StartFrame",
        "EndFrame",
    ]
