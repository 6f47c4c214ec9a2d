"""Supervisor layer: per-method call statistics (counts, errors, latency percentiles, histogram).

The histogram (`LATENCY_BUCKETS_S`, cumulative counts and a sum, as Prometheus wants them) counts
every call since start; the percentiles are over the last `SAMPLES` calls.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

SAMPLES = 2048  # latencies kept per method: enough for a stable p99
# Upper bounds in seconds: a ping takes a millisecond, a completion delivery seconds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class MethodStats:
    calls: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    sum_s: float = 0.0

    def observe(self, elapsed_s: float) -> None:
        self.latencies_ms.append(elapsed_s * 1000.0)
        self.sum_s += elapsed_s
        index = bisect_left(LATENCY_BUCKETS_S, elapsed_s)  # the first bound >= elapsed_s
        if index < len(LATENCY_BUCKETS_S):
            self.bucket_counts[index] += 1

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        """`(le, count)` pairs, cumulative, ending with `+Inf` (= every call)."""
        pairs, running = [], 0
        for bound, count in zip(LATENCY_BUCKETS_S, self.bucket_counts, strict=True):
            running += count
            pairs.append((repr(float(bound)), float(running)))
        return [*pairs, ("+Inf", float(self.calls))]

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return {"p50_ms": None, "p90_ms": None, "p99_ms": None}

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99)}


@dataclass
class CallStats:
    methods: dict[str, MethodStats] = field(default_factory=dict)

    def record(self, method: str, elapsed_s: float, *, ok: bool) -> None:
        # Not setdefault: that would build a MethodStats (a deque, a list) on every call.
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        stats.calls += 1
        stats.errors += 0 if ok else 1
        stats.observe(elapsed_s)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.methods.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.methods.values())

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {
            method: {"calls": s.calls, "errors": s.errors, **s.percentiles()}
            for method, s in sorted(self.methods.items())
        }
