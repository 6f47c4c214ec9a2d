"""HTTP layer: plugin health (`GET /api/v1/plugins`) and Prometheus metrics (`GET /metrics`).

Contract: both read the supervisor's live figures at request time (state, version, sandbox
layers, pid, RSS, uptime, restarts, calls, errors, latency percentiles per method); `/metrics`
exposes the same figures in the Prometheus text format, labelled by plugin and method. Labels carry
only plugin and method names, never data, so no secret can reach a metrics label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._state import ApiStateDep

if TYPE_CHECKING:
    from .._host import PluginHost

router = APIRouter(tags=["health"])


@router.get("/api/v1/plugins")
async def list_plugins(state: ApiStateDep) -> dict[str, Any]:
    """Per plugin: state, version, sandbox layers, process figures and call statistics."""
    return {"plugins": plugin_rows(state.plugins)}


@router.get("/metrics", include_in_schema=False)
async def metrics(state: ApiStateDep) -> Response:
    """The plugin figures in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PluginCollector(state.plugins))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def plugin_rows(plugins: PluginHost) -> list[dict[str, Any]]:
    """One status dict per discovered plugin, sorted by name."""
    return [plugins.get(name).status() for name in plugins.manifests]


class PluginCollector(Collector):
    """Builds metric families from the plugins' status at scrape time."""

    def __init__(self, plugins: PluginHost) -> None:
        self._plugins = plugins

    def collect(self) -> Iterator[Metric]:
        rows = plugin_rows(self._plugins)
        up = GaugeMetricFamily(
            "plugbox_plugin_up", "1 when the plugin process is ready", labels=["plugin"]
        )
        rss = GaugeMetricFamily(
            "plugbox_plugin_rss_bytes", "Resident memory of the plugin process", labels=["plugin"]
        )
        restarts = CounterMetricFamily(
            "plugbox_plugin_restarts", "Restarts after a crash", labels=["plugin"]
        )
        calls = CounterMetricFamily(
            "plugbox_plugin_calls", "Calls per method", labels=["plugin", "method"]
        )
        errors = CounterMetricFamily(
            "plugbox_plugin_errors", "Failed calls per method", labels=["plugin", "method"]
        )
        latency = GaugeMetricFamily(
            "plugbox_plugin_call_latency_seconds",
            "Call latency percentiles per method",
            labels=["plugin", "method", "quantile"],
        )
        for row in rows:
            name = row["name"]
            up.add_metric([name], 1.0 if row["state"] == "ready" else 0.0)
            rss.add_metric([name], float(row.get("rss_bytes") or 0))
            restarts.add_metric([name], float(row.get("restarts") or 0))
            for method, figures in (row.get("methods") or {}).items():
                calls.add_metric([name, method], float(figures.get("calls", 0)))
                errors.add_metric([name, method], float(figures.get("errors", 0)))
                for quantile in ("p50", "p90", "p99"):
                    value = figures.get(f"{quantile}_ms")
                    if value is not None:
                        label = "0." + quantile[1:]
                        latency.add_metric([name, method, label], float(value) / 1000.0)
        yield from (up, rss, restarts, calls, errors, latency)
