"""Call statistics: each call lands in the first histogram bucket whose bound holds it."""

from __future__ import annotations

from host._stats import LATENCY_BUCKETS_S, CallStats


def test_each_call_lands_in_the_first_bucket_whose_bound_holds_it() -> None:
    stats = CallStats()
    samples = [0.0, 0.001, 0.0010001, 0.003, 60.0, 61.0]
    for elapsed in samples:
        stats.record("ping", elapsed, ok=True)
    stats.record("ping", 0.002, ok=False)
    ping = stats.methods["ping"]
    expected = [0] * len(LATENCY_BUCKETS_S)
    for elapsed in [*samples, 0.002]:
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if elapsed <= bound:
                expected[index] += 1
                break
    assert ping.bucket_counts == expected
    assert expected[0] == 2  # 0 and exactly 1 ms
    assert sum(expected) == 6  # 61 s is above every bound: only +Inf counts it
    assert ping.cumulative_buckets()[-1] == ("+Inf", 7.0)
    assert (ping.calls, ping.errors) == (7, 1)
    assert stats.methods.keys() == {"ping"}
