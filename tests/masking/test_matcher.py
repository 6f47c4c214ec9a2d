"""The scrubber's matcher: the same answers as one longest-first regex over every value, however
the set changed (adds, removals, rebuilds, a background rebuild), and the host's set of secrets
does not grow with the runs and requests it served."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdk.protocol import SecretScrubber, _matcher, mask
from sdk.protocol._matcher import SecretMatcher


def reference(values: set[str], text: str) -> str:
    """What the scrubber did before the matcher: one alternation, longest value first."""
    if not values:
        return text
    ordered = sorted(values, key=len, reverse=True)
    return re.sub("|".join(map(re.escape, ordered)), lambda m: mask(m.group(0)), text)


ALPHABET = "ab.c*"  # few letters: values share prefixes and overlap in the text
values_st = st.sets(st.text(ALPHABET, min_size=6, max_size=10), max_size=12)


@settings(max_examples=300, deadline=None)
@given(values_st, values_st, st.text(ALPHABET, max_size=80))
def test_it_replaces_as_a_longest_first_alternation_would(
    kept: set[str], dropped: set[str], text: str
) -> None:
    matcher = SecretMatcher()
    for value in sorted(kept | dropped):
        matcher.add(value)
    for value in sorted(dropped - kept):
        matcher.remove(value)
    assert matcher.sub(text, mask) == reference(kept, text)


def test_rebuilds_in_the_background_lose_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_matcher, "DELTA_MAX", 4)
    monkeypatch.setattr(_matcher, "SYNC_MAX", 8)  # every base past 8 prefixes is built in a thread
    matcher = SecretMatcher()
    values = [f"{i:03d}-secret-value" for i in range(200)]
    for value in values:
        matcher.add(value)
        text = f"x {value} y"
        assert matcher.sub(text, mask) == f"x {mask(value)} y"  # found at once, built or not
    for value in values[:150]:
        matcher.remove(value)
    assert matcher.wait_idle(10)  # the last background build installs within a bounded wait
    # One build in line (the 5th add, 5 prefixes), then at least one in a thread (past 8); how
    # many more depends on how fast threads run next to the adds, so only the floor is asserted.
    assert matcher.rebuilds >= 2
    assert matcher.sub(values[10], mask) == values[10]  # removed: no longer masked
    assert matcher.sub(values[180], mask) == mask(values[180])
    assert len(matcher) == 50
    assert len(matcher._base[1]) + len(matcher._delta[1]) <= 50 + 150  # bounded by stale limit


def test_runs_and_requests_leave_the_hosts_set_as_it_was() -> None:
    host = SecretScrubber(["lifetime-secret"])
    for run in range(2_000):
        release = host.hold([f"run-{run}-provider-key", "shared-webhook-secret"])
        with host.scoped([f"request-{run}-secret", "lifetime-secret"]):
            assert host.known == 4
            assert f"run-{run}-provider-key" not in host.scrub_text(f"key run-{run}-provider-key")
        release()
        release()  # twice releases once
    assert host.values() == {"lifetime-secret"}
    assert host.scrub_text("run-1-provider-key") == "run-1-provider-key"
    assert host.scrub_text("lifetime-secret") == mask("lifetime-secret")
    assert len(host._matcher) == 1
