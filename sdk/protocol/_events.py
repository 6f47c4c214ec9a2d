"""Wire layer: the stable catalogue of live call event kinds a runtime session can subscribe to.

Contract: the host's pipecat bridge turns frames into `LiveEvent(kind, seq, t_ms, data)` values
whose `kind` is one of the constants below and whose `data` carries exactly the fields listed for it
(values are JSON scalars or lists; absent information is null). Kinds are only ever added, never
renamed; a plugin subscribing to an unknown kind is an authoring error caught at import.
"""

from __future__ import annotations

from typing import Final


class EventKind:
    """Live event kinds, grouped as in `docs/protocol.md`."""

    CALL_STARTED: Final = "call.started"  # {}
    CALL_ENDED: Final = "call.ended"  # {reason: "end" | "cancel" | "stop"}
    USER_STARTED_SPEAKING: Final = "user.started_speaking"  # {}
    USER_STOPPED_SPEAKING: Final = "user.stopped_speaking"  # {}
    BOT_STARTED_SPEAKING: Final = "bot.started_speaking"  # {}
    BOT_STOPPED_SPEAKING: Final = "bot.stopped_speaking"  # {}
    TRANSCRIPT_INTERIM: Final = "transcript.interim"  # {text, user_id, language}
    TRANSCRIPT_FINAL: Final = "transcript.final"  # {text, user_id, language}
    LLM_RESPONSE_STARTED: Final = "llm.response_started"  # {}
    LLM_TEXT: Final = "llm.text"  # {text}
    LLM_RESPONSE_ENDED: Final = "llm.response_ended"  # {}
    TTS_TEXT: Final = "tts.text"  # {text}
    TOOL_CALL_STARTED: Final = "tool.call_started"  # {tool_call_id, function_name, arguments}
    TOOL_CALL_RESULT: Final = "tool.call_result"  # {tool_call_id, function_name, result}
    INTERRUPTION: Final = "interruption"  # {}
    METRICS_TTFB: Final = "metrics.ttfb"  # {processor, model, seconds}
    METRICS_PROCESSING: Final = "metrics.processing"  # {processor, model, seconds}
    METRICS_LLM_USAGE: Final = (
        "metrics.llm_usage"  # {processor, model, prompt_tokens, completion_tokens, total_tokens}
    )
    METRICS_TTS_USAGE: Final = "metrics.tts_usage"  # {processor, model, characters}
    ERROR: Final = "error"  # {message, processor, fatal}
    # The shadow task's kinds (`_frames.py`): sent only to a plugin whose sessions attached
    # observers or task handlers to the `ShadowTask`, never by subscription alone.
    FRAME: Final = "pipecat.frame"  # {cls, module, id, name, sibling, src, dst, dir, ts, fields}
    TASK_EVENT: Final = "pipecat.task_event"  # {name, frame: a FRAME payload or null}


ALL_EVENT_KINDS: Final[frozenset[str]] = frozenset(
    value for name, value in vars(EventKind).items() if name.isupper()
)
SHADOW_EVENT_KINDS: Final[frozenset[str]] = frozenset({EventKind.FRAME, EventKind.TASK_EVENT})
