"""Call metrics plugin: folds live events into turn, latency, tool and usage figures.

Pure logic, no I/O: the runtime session feeds it events; `snapshot()` is the compact,
JSON-serialisable summary persisted at call end and read by the completion handler.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from sdk.protocol import EventKind, LiveEvent

SUBSCRIPTIONS = frozenset(
    {
        EventKind.CALL_STARTED,
        EventKind.CALL_ENDED,
        EventKind.USER_STARTED_SPEAKING,
        EventKind.USER_STOPPED_SPEAKING,
        EventKind.BOT_STARTED_SPEAKING,
        EventKind.BOT_STOPPED_SPEAKING,
        EventKind.INTERRUPTION,
        EventKind.TOOL_CALL_STARTED,
        EventKind.TOOL_CALL_RESULT,
        EventKind.METRICS_TTFB,
        EventKind.METRICS_LLM_USAGE,
        EventKind.METRICS_TTS_USAGE,
        EventKind.ERROR,
    }
)


@dataclass
class MetricsCollector:
    """Accumulates one call's figures from its events, in arrival order."""

    started_ms: float | None = None
    ended_ms: float | None = None
    user_turns: int = 0
    bot_turns: int = 0
    interruptions: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ttfb_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tts_characters: int = 0
    tools: list[dict[str, Any]] = field(default_factory=list)
    _user_stopped_ms: float | None = None
    _open_tools: dict[str, tuple[str, float]] = field(default_factory=dict)

    def add(self, event: LiveEvent) -> None:
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, event)

    def snapshot(self) -> dict[str, Any]:
        return {
            "duration_ms": _duration(self.started_ms, self.ended_ms),
            "user_turns": self.user_turns,
            "bot_turns": self.bot_turns,
            "interruptions": self.interruptions,
            "errors": self.errors,
            "latency_ms": _summary(self.latencies_ms),
            "latencies_ms": [round(value, 1) for value in self.latencies_ms],
            "ttfb_s": _summary(self.ttfb_s),
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "tts_characters": self.tts_characters,
            "tool_calls": self.tools,
        }

    def _on_user_stopped(self, event: LiveEvent) -> None:
        self.user_turns += 1
        self._user_stopped_ms = event.t_ms

    def _on_bot_started(self, event: LiveEvent) -> None:
        self.bot_turns += 1
        if self._user_stopped_ms is not None:
            self.latencies_ms.append(event.t_ms - self._user_stopped_ms)
            self._user_stopped_ms = None

    def _on_tool_started(self, event: LiveEvent) -> None:
        call_id = str(event.data.get("tool_call_id"))
        self._open_tools[call_id] = (str(event.data.get("function_name")), event.t_ms)

    def _on_tool_result(self, event: LiveEvent) -> None:
        call_id = str(event.data.get("tool_call_id"))
        name, started = self._open_tools.pop(call_id, (str(event.data.get("function_name")), None))
        duration = None if started is None else round(event.t_ms - started, 1)
        self.tools.append({"function_name": name, "tool_call_id": call_id, "duration_ms": duration})

    def _on_usage(self, event: LiveEvent) -> None:
        self.prompt_tokens += int(event.data.get("prompt_tokens") or 0)
        self.completion_tokens += int(event.data.get("completion_tokens") or 0)


def _set_started(collector: MetricsCollector, event: LiveEvent) -> None:
    collector.started_ms = event.t_ms


def _set_ended(collector: MetricsCollector, event: LiveEvent) -> None:
    collector.ended_ms = event.t_ms


def _count_interruption(collector: MetricsCollector, _: LiveEvent) -> None:
    collector.interruptions += 1


def _count_error(collector: MetricsCollector, _: LiveEvent) -> None:
    collector.errors += 1


def _add_ttfb(collector: MetricsCollector, event: LiveEvent) -> None:
    seconds = event.data.get("seconds")
    if isinstance(seconds, int | float):
        collector.ttfb_s.append(float(seconds))


def _add_tts(collector: MetricsCollector, event: LiveEvent) -> None:
    collector.tts_characters += int(event.data.get("characters") or 0)


_HANDLERS = {
    EventKind.CALL_STARTED: _set_started,
    EventKind.CALL_ENDED: _set_ended,
    EventKind.USER_STOPPED_SPEAKING: MetricsCollector._on_user_stopped,
    EventKind.BOT_STARTED_SPEAKING: MetricsCollector._on_bot_started,
    EventKind.INTERRUPTION: _count_interruption,
    EventKind.TOOL_CALL_STARTED: MetricsCollector._on_tool_started,
    EventKind.TOOL_CALL_RESULT: MetricsCollector._on_tool_result,
    EventKind.METRICS_TTFB: _add_ttfb,
    EventKind.METRICS_LLM_USAGE: MetricsCollector._on_usage,
    EventKind.METRICS_TTS_USAGE: _add_tts,
    EventKind.ERROR: _count_error,
}


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 1)


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(p90, 3),
        "max": round(ordered[-1], 3),
    }
