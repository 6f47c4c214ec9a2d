"""Live call layer: frame -> event extraction — what each live event kind carries.

Contract: an `Extractor` takes one pipecat frame (read by attribute only: this module imports no
pipecat, `_observer` maps pipecat's classes onto these functions) and yields `(kind, data)` pairs
whose kind is an `EventKind` and whose data is plain JSON with exactly the fields the kind
documents in `sdk/protocol/_events.py` (absent information is null). One frame yields at most one
event, except a `FunctionCallsStartedFrame` (one per call) and a `MetricsFrame` (one per
non-empty metric). Extractors may raise on a malformed frame; the observer catches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

from sdk.protocol import EventKind

Payload = dict[str, Any]
Extracted = Iterator[tuple[str, Payload]]
Extractor = Callable[[Any], Extracted]
MetricReader = Callable[[Any], Payload | None]
Sink = Callable[[str, float, Payload], None]  # (kind, t_ms, data): the observer's only output


def jsonable(value: Any) -> Any:
    """Plain JSON for tool arguments and results (an unknown object becomes its text)."""
    try:
        return msgspec.to_builtins(value, enc_hook=str)
    except (TypeError, ValueError):
        return str(value)


def simple(kind: str) -> Extractor:
    """An event that carries no data (speaking, response boundaries, interruptions)."""

    def extract(_: Any) -> Extracted:
        yield kind, {}

    return extract


def ended(reason: str) -> Extractor:
    """`call.ended` with how it ended: end, cancel or stop."""

    def extract(_: Any) -> Extracted:
        yield EventKind.CALL_ENDED, {"reason": reason}

    return extract


def transcript(kind: str) -> Extractor:
    """Interim or final transcript: text, speaker id and language (a `Language` enum or None)."""

    def extract(frame: Any) -> Extracted:
        language = getattr(frame, "language", None)
        language_text = getattr(language, "value", language)
        yield (
            kind,
            {
                "text": frame.text,
                "user_id": frame.user_id,
                "language": str(language_text) if language_text else None,
            },
        )

    return extract


def text(kind: str) -> Extractor:
    """LLM or TTS text: the chunk as generated or spoken."""

    def extract(frame: Any) -> Extracted:
        yield kind, {"text": frame.text}

    return extract


def tools_started(frame: Any) -> Extracted:
    """One `tool.call_started` per function call the LLM asked for."""
    for call in frame.function_calls:
        yield _tool(EventKind.TOOL_CALL_STARTED, call, arguments=jsonable(call.arguments))


def tool_result(frame: Any) -> Extracted:
    yield _tool(EventKind.TOOL_CALL_RESULT, frame, result=jsonable(frame.result))


def _tool(kind: str, call: Any, **payload: Any) -> tuple[str, Payload]:
    """A tool event: the call's id and function name, plus the arguments or the result."""
    return kind, {"tool_call_id": call.tool_call_id, "function_name": call.function_name, **payload}


def error(frame: Any) -> Extracted:
    """An error; fatal when flagged so (deprecated in pipecat) or its processor is unusable."""
    processor = frame.processor
    unusable = processor is not None and not getattr(processor, "is_usable", True)
    yield (
        EventKind.ERROR,
        {
            "message": str(frame.error),
            "processor": getattr(processor, "name", None),
            "fatal": bool(frame.fatal) or unusable,
        },
    )


def seconds(item: Any) -> Payload | None:
    """TTFB or processing time; None for pipecat's initial all-zero report."""
    if not item.value:
        return None
    return {"processor": item.processor, "model": item.model, "seconds": float(item.value)}


def llm_usage(item: Any) -> Payload | None:
    usage = item.value
    return {
        "processor": item.processor,
        "model": item.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def tts_usage(item: Any) -> Payload | None:
    return {"processor": item.processor, "model": item.model, "characters": int(item.value)}


def metrics(readers: Mapping[type, tuple[str, MetricReader]]) -> Extractor:
    """One event per metric in a `MetricsFrame` whose class has a reader (others are skipped)."""

    def extract(frame: Any) -> Extracted:
        for item in frame.data:
            found = readers.get(type(item))
            if found is None:
                continue
            kind, read = found
            payload = read(item)
            if payload is not None:
                yield kind, payload

    return extract


def extractor_for(table: Mapping[type, Extractor], cls: type) -> Extractor | None:
    """The extractor of the nearest class in `cls`'s MRO that the table knows (else None)."""
    for base in cls.__mro__:
        found = table.get(base)
        if found is not None:
            return found
    return None
