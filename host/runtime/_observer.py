"""Live call layer: the pipecat observer — the only module that imports pipecat's frame classes.

Contract: one `BridgeObserver` per run, registered on the real `PipelineWorker`. It sees each
logical frame once (`observe_every_push=False` plus the broadcast-sibling rule: of a frame
broadcast both ways only the downstream copy counts), looks its class up in `EXTRACTORS` (a dict
hit per frame class after the first; audio, heartbeats and RTVI frames map to nothing), and hands
each `(kind, t_ms, data)` to a synchronous sink that only `put_nowait`s. It never awaits and never
raises: an exception in an observer silently kills pipecat's proxy task for the rest of the call,
so a bug here costs one event (counted in `failures`), never the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pipecat.frames import frames as f
from pipecat.metrics import metrics as m
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection

from sdk.protocol import EventKind

from . import _events as ev

_NS_PER_MS = 1_000_000  # FramePushed.timestamp is nanoseconds on the pipeline clock

METRIC_READERS: dict[type, tuple[str, ev.MetricReader]] = {
    m.TTFBMetricsData: (EventKind.METRICS_TTFB, ev.seconds),
    m.ProcessingMetricsData: (EventKind.METRICS_PROCESSING, ev.seconds),
    m.LLMUsageMetricsData: (EventKind.METRICS_LLM_USAGE, ev.llm_usage),
    m.TTSUsageMetricsData: (EventKind.METRICS_TTS_USAGE, ev.tts_usage),
}

EXTRACTORS: dict[type, ev.Extractor] = {
    f.StartFrame: ev.simple(EventKind.CALL_STARTED),
    f.EndFrame: ev.ended("end"),
    f.CancelFrame: ev.ended("cancel"),
    f.StopFrame: ev.ended("stop"),
    f.UserStartedSpeakingFrame: ev.simple(EventKind.USER_STARTED_SPEAKING),
    f.UserStoppedSpeakingFrame: ev.simple(EventKind.USER_STOPPED_SPEAKING),
    f.BotStartedSpeakingFrame: ev.simple(EventKind.BOT_STARTED_SPEAKING),
    f.BotStoppedSpeakingFrame: ev.simple(EventKind.BOT_STOPPED_SPEAKING),
    f.TranscriptionFrame: ev.transcript(EventKind.TRANSCRIPT_FINAL),
    f.InterimTranscriptionFrame: ev.transcript(EventKind.TRANSCRIPT_INTERIM),
    f.LLMFullResponseStartFrame: ev.simple(EventKind.LLM_RESPONSE_STARTED),
    f.LLMTextFrame: ev.text(EventKind.LLM_TEXT),
    f.LLMFullResponseEndFrame: ev.simple(EventKind.LLM_RESPONSE_ENDED),
    f.TTSTextFrame: ev.text(EventKind.TTS_TEXT),
    f.FunctionCallsStartedFrame: ev.tools_started,
    f.FunctionCallResultFrame: ev.tool_result,
    f.InterruptionFrame: ev.simple(EventKind.INTERRUPTION),
    f.MetricsFrame: ev.metrics(METRIC_READERS),
    f.ErrorFrame: ev.error,
}


class BridgeObserver(BaseObserver):
    """Turns a run's frames into events for its bridge: first push only, downstream copy only."""

    def __init__(self, sink: ev.Sink) -> None:
        super().__init__(observe_every_push=False)
        self._sink = sink
        self._cache: dict[type, ev.Extractor | None] = {}
        self.failures = 0  # frames whose extraction raised (a bug here, never the call's)

    async def on_push_frame(self, data: FramePushed) -> None:
        try:
            self._observe(data)
        except Exception:  # the observer boundary: never let pipecat's proxy task die
            self.failures += 1

    def _observe(self, data: Any) -> None:
        frame = data.frame
        cls = type(frame)
        try:
            extractor = self._cache[cls]
        except KeyError:
            extractor = self._cache[cls] = ev.extractor_for(EXTRACTORS, cls)
        if extractor is None:
            return
        if frame.broadcast_sibling_id is not None and data.direction != FrameDirection.DOWNSTREAM:
            return  # the upstream twin of a broadcast frame: the downstream copy is the event
        t_ms = data.timestamp / _NS_PER_MS
        for kind, payload in extractor(frame):
            self._sink(kind, t_ms, payload)


class ShadowObserver(BaseObserver):
    """Hands every frame's first push, both copies of a broadcast, to the shadow-task sink.

    The sink (`RunBridge.emit_frame`) copies what plugins selected at once (frames are live objects
    that processors mutate later) and only `put_nowait`s; like `BridgeObserver` it never raises.
    """

    def __init__(self, sink: Callable[[FramePushed], None]) -> None:
        super().__init__(observe_every_push=False)
        self._sink = sink
        self.failures = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        try:
            self._sink(data)
        except Exception:  # the observer boundary: never let pipecat's proxy task die
            self.failures += 1


TASK_EVENTS = ("on_pipeline_started", "on_pipeline_finished", "on_pipeline_error")


def forward_task_events(worker: Any, emit: Callable[[str, Any, float], None]) -> None:
    """Forward the worker's task events to the shadow tasks, with the frame they carry."""
    clock = worker  # the pipeline clock runs from the worker's start; events carry its time

    def forward(name: str) -> Callable[..., None]:
        def handler(_worker: Any, frame: Any = None) -> None:
            with contextlib.suppress(Exception):  # a forwarding bug never reaches the call
                emit(name, frame, _now_ms(clock))

        return handler

    for name in TASK_EVENTS:
        worker.add_event_handler(name, forward(name))


def _now_ms(worker: Any) -> float:
    try:
        return float(worker._clock.get_time()) / _NS_PER_MS
    except Exception:  # no clock yet: a task event before the start carries 0
        return 0.0
