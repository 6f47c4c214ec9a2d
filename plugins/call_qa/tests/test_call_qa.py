"""Call QA plugin: contract expectations and the rules over a synthetic call."""

from __future__ import annotations

from pathlib import Path

from sdk.testing import check_package, import_plugin, synthetic_call_events

PLUGIN = Path(__file__).resolve().parents[1]


def test_call_qa_meets_the_contract() -> None:
    check_package(PLUGIN).raise_for_failures()


def test_the_rules_score_phrases_silence_and_interruptions() -> None:
    import_plugin(PLUGIN)
    from call_qa.node import CallQANodeData
    from call_qa.rules import evaluate
    from call_qa.runtime import TranscriptCollector

    collector = TranscriptCollector()
    for event in synthetic_call_events(2):
        collector.add(event)
    snapshot = collector.snapshot()
    good = CallQANodeData(
        name="qa", required_phrases=["thank you for calling"], max_silence_ms=5000
    )
    assert evaluate(good, snapshot)["score"] == 100
    strict = CallQANodeData(
        name="qa", forbidden_phrases=["thank you"], max_silence_ms=100, max_interruptions=0
    )
    verdict = evaluate(strict, snapshot)
    assert verdict["passed"] is False
    assert [f["rule"] for f in verdict["findings"] if not f["passed"]] == [
        "forbidden_phrase",
        "max_silence",
        "max_interruptions",
    ]
