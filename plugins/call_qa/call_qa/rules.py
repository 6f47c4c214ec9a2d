"""Call QA plugin: the rules, pure functions from (node data, snapshot) to findings and a score."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .node import CallQANodeData


@dataclass(frozen=True)
class Finding:
    rule: str
    passed: bool
    detail: str


def evaluate(data: CallQANodeData, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Score = share of passed checks, 0-100; every check is reported as a finding."""
    bot_text = " ".join(
        turn["text"] for turn in snapshot.get("transcript") or [] if turn.get("role") == "bot"
    ).lower()
    findings = [_required(phrase, bot_text) for phrase in data.required_phrases]
    findings += [_forbidden(phrase, bot_text) for phrase in data.forbidden_phrases]
    silence = float(snapshot.get("max_silence_ms") or 0)
    findings.append(
        Finding(
            "max_silence",
            silence <= data.max_silence_ms,
            f"longest silence {silence:.0f} ms (limit {data.max_silence_ms} ms)",
        )
    )
    interruptions = int(snapshot.get("interruptions") or 0)
    findings.append(
        Finding(
            "max_interruptions",
            interruptions <= data.max_interruptions,
            f"{interruptions} interruption(s) (limit {data.max_interruptions})",
        )
    )
    score = round(100 * sum(f.passed for f in findings) / len(findings))
    return {
        "score": score,
        "passed": score >= data.pass_score,
        "findings": [asdict(finding) for finding in findings],
    }


def _required(phrase: str, text: str) -> Finding:
    said = phrase.lower() in text
    return Finding("required_phrase", said, f"{phrase!r} {'said' if said else 'never said'}")


def _forbidden(phrase: str, text: str) -> Finding:
    said = phrase.lower() in text
    return Finding("forbidden_phrase", not said, f"{phrase!r} {'said' if said else 'not said'}")
