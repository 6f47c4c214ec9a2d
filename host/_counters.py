"""Host layer: process-wide event counters the metrics endpoint exposes (Prometheus `_total`s).

Contract: `COUNTERS.inc(name, n, **labels)` adds to a monotonic counter where an event happens
(a live event lost, a completion delivery's outcome, a call the host refused); `/metrics` reads
`COUNTERS.samples(name)` at scrape time. Labels are plugin names, outcomes and reasons, never data.
Counters live as long as the process, like Prometheus counters should; they are never reset.
"""

from __future__ import annotations

import threading
from collections import defaultdict

LIVE_DROPPED = "live_events_dropped"  # plugin, reason: overflow | plugin_gone | deadline | in_pipe
LIVE_DELIVERED = "live_events_delivered"  # plugin: events a plugin received and finished with
DELIVERIES = "completion_deliveries"  # plugin, outcome: the completion orchestrator's statuses
DENIALS = "plugin_denials"  # plugin, reason: circuit_open | limit name (memory, cpu, ...)

Labels = tuple[tuple[str, str], ...]


class Counters:
    def __init__(self) -> None:
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._lock = threading.Lock()  # `/metrics` may be scraped from a server thread

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        if amount <= 0:
            return
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + amount

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        with self._lock:
            return [(dict(key), value) for key, value in self._values.get(name, {}).items()]

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


COUNTERS = Counters()
