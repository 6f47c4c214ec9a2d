"""Live call layer: the pipecat observer — the only module that reads pipecat frames.

Contract: one `BridgeObserver` per run, registered on the real `PipelineWorker`. It sees each
logical frame once (`observe_every_push=False` plus the broadcast-sibling rule: of a frame
broadcast both ways only the downstream copy counts), turns the interesting ones into
`(kind, t_ms, data)` with plain JSON data, and hands them to a synchronous sink. It never awaits
and never raises: a bug here costs an event, never the call (an exception in an observer would
silently kill pipecat's proxy task for the rest of the call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from pipecat.frames import frames as f
from pipecat.metrics import metrics as m
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection

from sdk.protocol import EventKind

Sink = Callable[[str, float, dict[str, Any]], None]
Extractor = Callable[[Any], Iterator[tuple[str, dict[str, Any]]]]
_NS_PER_MS = 1_000_000


def _jsonable(value: Any) -> Any:
    """Plain JSON for tool arguments and results (unknown objects become their text)."""
    try:
        return msgspec.to_builtins(value, enc_hook=str)
    except (TypeError, ValueError):
        return str(value)


def _simple(kind: str) -> Extractor:
    def extract(_: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        yield kind, {}

    return extract


def _ended(reason: str) -> Extractor:
    def extract(_: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        yield EventKind.CALL_ENDED, {"reason": reason}

    return extract


def _transcript(kind: str) -> Extractor:
    def extract(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        language = getattr(frame, "language", None)
        yield (
            kind,
            {
                "text": frame.text,
                "user_id": frame.user_id,
                "language": str(language) if language else None,
            },
        )

    return extract


def _text(kind: str) -> Extractor:
    def extract(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        yield kind, {"text": frame.text}

    return extract


def _tools_started(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for call in frame.function_calls:
        yield (
            EventKind.TOOL_CALL_STARTED,
            {
                "tool_call_id": call.tool_call_id,
                "function_name": call.function_name,
                "arguments": _jsonable(call.arguments),
            },
        )


def _tool_result(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    yield (
        EventKind.TOOL_CALL_RESULT,
        {
            "tool_call_id": frame.tool_call_id,
            "function_name": frame.function_name,
            "result": _jsonable(frame.result),
        },
    )


def _error(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    processor = getattr(frame, "processor", None)
    yield (
        EventKind.ERROR,
        {
            "message": str(frame.error),
            "processor": getattr(processor, "name", None),
            "fatal": bool(getattr(frame, "fatal", False)),
        },
    )


def _metrics(frame: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in frame.data:
        base = {"processor": item.processor, "model": item.model}
        if isinstance(item, m.TTFBMetricsData) and item.value:
            yield EventKind.METRICS_TTFB, {**base, "seconds": item.value}
        elif isinstance(item, m.ProcessingMetricsData) and item.value:
            yield EventKind.METRICS_PROCESSING, {**base, "seconds": item.value}
        elif isinstance(item, m.LLMUsageMetricsData):
            usage = item.value
            yield (
                EventKind.METRICS_LLM_USAGE,
                {
                    **base,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            )
        elif isinstance(item, m.TTSUsageMetricsData):
            yield EventKind.METRICS_TTS_USAGE, {**base, "characters": item.value}


_EXTRACTORS: dict[type, Extractor] = {
    f.StartFrame: _simple(EventKind.CALL_STARTED),
    f.EndFrame: _ended("end"),
    f.CancelFrame: _ended("cancel"),
    f.StopFrame: _ended("stop"),
    f.UserStartedSpeakingFrame: _simple(EventKind.USER_STARTED_SPEAKING),
    f.UserStoppedSpeakingFrame: _simple(EventKind.USER_STOPPED_SPEAKING),
    f.BotStartedSpeakingFrame: _simple(EventKind.BOT_STARTED_SPEAKING),
    f.BotStoppedSpeakingFrame: _simple(EventKind.BOT_STOPPED_SPEAKING),
    f.TranscriptionFrame: _transcript(EventKind.TRANSCRIPT_FINAL),
    f.InterimTranscriptionFrame: _transcript(EventKind.TRANSCRIPT_INTERIM),
    f.LLMFullResponseStartFrame: _simple(EventKind.LLM_RESPONSE_STARTED),
    f.LLMTextFrame: _text(EventKind.LLM_TEXT),
    f.LLMFullResponseEndFrame: _simple(EventKind.LLM_RESPONSE_ENDED),
    f.TTSTextFrame: _text(EventKind.TTS_TEXT),
    f.FunctionCallsStartedFrame: _tools_started,
    f.FunctionCallResultFrame: _tool_result,
    f.InterruptionFrame: _simple(EventKind.INTERRUPTION),
    f.MetricsFrame: _metrics,
    f.ErrorFrame: _error,
}


def _extractor_for(cls: type) -> Extractor | None:
    """The extractor of the nearest known class in the frame's MRO (audio frames: none)."""
    for base in cls.__mro__:
        if base in _EXTRACTORS:
            return _EXTRACTORS[base]
    return None


class BridgeObserver(BaseObserver):
    """Turns frames into events for a `RunBridge`; first push only, downstream copy only."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(observe_every_push=False)
        self._sink = sink
        self._cache: dict[type, Extractor | None] = {}
        self.failures = 0

    async def on_push_frame(self, data: FramePushed) -> None:
        try:
            frame = data.frame
            if (
                frame.broadcast_sibling_id is not None
                and data.direction != FrameDirection.DOWNSTREAM
            ):
                return
            cls = type(frame)
            if cls in self._cache:
                extractor = self._cache[cls]
            else:
                extractor = self._cache[cls] = _extractor_for(cls)
            if extractor is None:
                return
            t_ms = data.timestamp / _NS_PER_MS
            for kind, payload in extractor(frame):
                self._sink(kind, t_ms, payload)
        except Exception:  # the observer boundary: never let pipecat's proxy task die
            self.failures += 1
