"""Call QA plugin: the live session collecting the transcript, silences and interruptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdk import IntegrationRuntimeContext, IntegrationRuntimeSession
from sdk.protocol import EventKind, LiveEvent

from .node import TYPE_NAME

SNAPSHOT_KEY = "call_qa"
_SPEECH_STARTS = {EventKind.USER_STARTED_SPEAKING, EventKind.BOT_STARTED_SPEAKING}
_SPEECH_STOPS = {EventKind.USER_STOPPED_SPEAKING, EventKind.BOT_STOPPED_SPEAKING}


@dataclass
class TranscriptCollector:
    """Builds the committed transcript (final user text, spoken bot text) and silence gaps."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    interruptions: int = 0
    max_silence_ms: float = 0.0
    _speaking: int = 0
    _quiet_since: float | None = None

    def add(self, event: LiveEvent) -> None:
        if event.kind == EventKind.TRANSCRIPT_FINAL:
            self._append("user", str(event.data.get("text") or ""), event.t_ms)
        elif event.kind == EventKind.TTS_TEXT:
            self._append("bot", str(event.data.get("text") or ""), event.t_ms)
        elif event.kind == EventKind.INTERRUPTION:
            self.interruptions += 1
        elif event.kind in _SPEECH_STARTS:
            self._on_speech_started(event.t_ms)
        elif event.kind in _SPEECH_STOPS:
            self._speaking = max(0, self._speaking - 1)
            if self._speaking == 0:
                self._quiet_since = event.t_ms

    def _on_speech_started(self, t_ms: float) -> None:
        if self._speaking == 0 and self._quiet_since is not None:
            self.max_silence_ms = max(self.max_silence_ms, t_ms - self._quiet_since)
        self._speaking += 1

    def _append(self, role: str, text: str, t_ms: float) -> None:
        if not text:
            return
        if self.turns and self.turns[-1]["role"] == role and role == "bot":
            self.turns[-1]["text"] += text  # TTS text arrives in fragments of one utterance
        else:
            self.turns.append({"role": role, "text": text, "t_ms": round(t_ms, 1)})

    def snapshot(self) -> dict[str, Any]:
        return {
            "transcript": self.turns,
            "interruptions": self.interruptions,
            "max_silence_ms": round(self.max_silence_ms, 1),
        }


class CallQASession(IntegrationRuntimeSession):
    """One per run: collects what the QA rules need."""

    name = "call_qa"
    subscriptions = frozenset(
        {
            EventKind.TRANSCRIPT_FINAL,
            EventKind.TTS_TEXT,
            EventKind.INTERRUPTION,
            *_SPEECH_STARTS,
            *_SPEECH_STOPS,
        }
    )

    def __init__(self) -> None:
        self.collector = TranscriptCollector()

    def on_event(self, event: LiveEvent) -> None:
        self.collector.add(event)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        return {SNAPSHOT_KEY: self.collector.snapshot()}


def create_runtime_sessions(context: IntegrationRuntimeContext) -> list[CallQASession]:
    """One session per run, only when an enabled call_qa node exists."""
    return [CallQASession()] if context.enabled_nodes(TYPE_NAME) else []
