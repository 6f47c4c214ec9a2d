"""HTTP layer: plugin status (`GET /api/v1/plugins`), restart, and Prometheus metrics (`/metrics`).

Contract: both read the supervisor's live figures at request time: state, version, sandbox layers,
the pid and RSS of the plugin's own process (not its sandbox wrapper), uptime, restarts, calls,
errors, latency per method, and the plugin's last failed calls with their tracebacks.
`POST /api/v1/plugins/{name}/restart` stops a plugin through its shutdown ladder and starts it
again. `/metrics` follows the Prometheus conventions (`_total` counters, `_seconds` histograms,
`_bytes` gauges, one state gauge per plugin and state); it reports memory only for running
plugins, so an idle (lazily started) plugin is `state="stopped"`, never a false "down". Labels
carry only plugin, method, state, reason and outcome names, never data, so no secret can reach one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sdk.protocol import PluginError

from .._counters import COUNTERS, DELIVERIES, DENIALS, LIVE_DELIVERED, LIVE_DROPPED
from .._lifecycle import ProcessState
from ._state import ApiStateDep

if TYPE_CHECKING:
    from .._host import PluginHost

router = APIRouter(tags=["health"])

# Process-wide counters: (metric name, help, label names).
_COUNTER_FAMILIES = (
    (
        LIVE_DROPPED,
        "plugbox_live_events_dropped_total",
        "Live call events lost before a plugin finished with them, by where they were lost",
        ("plugin", "reason"),
    ),
    (
        LIVE_DELIVERED,
        "plugbox_live_events_delivered_total",
        "Live call events received by a plugin that then finished the call",
        ("plugin",),
    ),
    (
        DELIVERIES,
        "plugbox_completion_deliveries_total",
        "Post-call completion node results, by outcome",
        ("plugin", "outcome"),
    ),
    (
        DENIALS,
        "plugbox_plugin_denials_total",
        "Calls refused by an open circuit and processes killed by a sandbox limit",
        ("plugin", "reason"),
    ),
)


@router.get("/api/v1/plugins")
async def list_plugins(state: ApiStateDep) -> dict[str, Any]:
    """Per plugin: state, version, sandbox layers, process figures, call statistics and the node
    types it serves; contested node types (served by none of their claimants) and load errors."""
    registry = state.plugins.registry
    rows = plugin_rows(state.plugins)
    for row in rows:
        info = registry.get_package(row["name"])
        row["node_types"] = info.type_names if info else []
        row["unserved_node_types"] = sorted(info.unserved) if info else []
    return {
        "plugins": rows,
        "conflicts": registry.conflicts(),
        "errors": [{"plugin": e.name, "message": e.message} for e in registry.errors],
    }


@router.post("/api/v1/plugins/{name}/restart")
async def restart_plugin(name: str, state: ApiStateDep) -> dict[str, Any]:
    """Stop the plugin through its shutdown ladder and start a fresh process."""
    if name not in state.plugins.manifests:
        raise HTTPException(404, f"Unknown plugin: {name!r}")
    handle = state.plugins.get(name)
    try:
        await handle.restart()
    except PluginError as exc:
        raise HTTPException(502, f"plugin {name!r} did not start again: {exc.message}") from None
    return handle.status()


@router.get("/metrics", include_in_schema=False)
async def metrics(state: ApiStateDep) -> Response:
    """The plugin figures in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PluginCollector(state.plugins))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def plugin_rows(plugins: PluginHost) -> list[dict[str, Any]]:
    """One status dict per discovered plugin, sorted by name."""
    return [plugins.get(name).status() for name in sorted(plugins.manifests)]


class PluginCollector(Collector):
    """Builds metric families from the plugins' status and the counters at scrape time."""

    def __init__(self, plugins: PluginHost) -> None:
        self._plugins = plugins

    def collect(self) -> Iterator[Metric]:
        yield from self._per_plugin()
        yield from self._per_method()
        for key, name, documentation, labels in _COUNTER_FAMILIES:
            family = CounterMetricFamily(name, documentation, labels=list(labels))
            for label_values, value in sorted(COUNTERS.samples(key), key=lambda s: str(s[0])):
                family.add_metric([label_values.get(label, "") for label in labels], value)
            yield family

    def _per_plugin(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "plugbox_plugin_state",
            "1 for the plugin's current process state, 0 for the others",
            labels=["plugin", "state"],
        )
        rss = GaugeMetricFamily(
            "plugbox_plugin_resident_memory_bytes",
            "Resident memory of the plugin's own process (running plugins only)",
            labels=["plugin"],
        )
        restarts = CounterMetricFamily(
            "plugbox_plugin_restarts", "Process starts after the first one", labels=["plugin"]
        )
        in_flight = GaugeMetricFamily(
            "plugbox_plugin_calls_in_flight", "Calls waiting for an answer", labels=["plugin"]
        )
        for row in plugin_rows(self._plugins):
            name = row["name"]
            for candidate in ProcessState:
                state.add_metric([name, candidate.value], float(row["state"] == candidate.value))
            if row.get("rss_bytes") is not None:
                rss.add_metric([name], float(row["rss_bytes"]))
            restarts.add_metric([name], float(row.get("restarts") or 0))
            in_flight.add_metric([name], float(row.get("in_flight") or 0))
        yield from (state, rss, restarts, in_flight)

    def _per_method(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "plugbox_plugin_calls", "Calls to a plugin, by method", labels=["plugin", "method"]
        )
        errors = CounterMetricFamily(
            "plugbox_plugin_call_errors", "Failed calls, by method", labels=["plugin", "method"]
        )
        latency = HistogramMetricFamily(
            "plugbox_plugin_call_duration_seconds",
            "Time from sending a call to its answer, by method",
            labels=["plugin", "method"],
        )
        for name in sorted(self._plugins.manifests):
            stats = self._plugins.get(name).stats
            for method, figures in sorted(stats.methods.items()):
                calls.add_metric([name, method], float(figures.calls))
                errors.add_metric([name, method], float(figures.errors))
                latency.add_metric(
                    [name, method], figures.cumulative_buckets(), sum_value=figures.sum_s
                )
        yield from (calls, errors, latency)
