"""Supervisor layer: per-method call statistics (counts, errors, latency percentiles)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SAMPLES = 2048  # latencies kept per method: enough for a stable p99


@dataclass
class MethodStats:
    calls: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))

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
        stats = self.methods.setdefault(method, MethodStats())
        stats.calls += 1
        stats.errors += 0 if ok else 1
        stats.latencies_ms.append(elapsed_s * 1000.0)

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
