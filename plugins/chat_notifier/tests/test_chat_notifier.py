"""Chat notifier plugin: contract expectations (its webhook URL is a secret) and the QA rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sdk.testing import check_package, import_plugin

PLUGIN = Path(__file__).resolve().parents[1]


def test_chat_notifier_meets_the_contract_including_masking() -> None:
    report = check_package(PLUGIN)
    report.raise_for_failures()
    masking = next(e for e in report.expectations if e.name == "secret masking round trip")
    # The round trip runs through the host's merge; in the plugin's own venv (`plugbox plugins
    # test`) the host is not importable, and `plugbox plugins check` runs it instead.
    host_here = importlib.util.find_spec("host") is not None
    assert masking.status == ("passed" if host_here else "skipped")


def test_it_posts_only_on_failed_qa_when_asked() -> None:
    import_plugin(PLUGIN)
    from chat_notifier.completion import qa_failed

    assert qa_failed({"q": {"type": "call_qa", "passed": False}})
    assert not qa_failed({"q": {"type": "call_qa", "passed": True}, "x": 1})
