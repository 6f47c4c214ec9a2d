"""Call metrics plugin: contract expectations, the collector, the report and the stats route."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from sdk.protocol import HttpRequestParams, HttpResponseResult, Method
from sdk.testing import check_package, import_plugin, serve_in_memory, synthetic_call_events

PLUGIN = Path(__file__).resolve().parents[1]


def test_call_metrics_meets_the_contract() -> None:
    check_package(PLUGIN).raise_for_failures()


def test_the_collector_measures_latency_turns_tools_and_tokens() -> None:
    import_plugin(PLUGIN)
    from call_metrics.collector import MetricsCollector

    collector = MetricsCollector()
    for event in synthetic_call_events(3):
        collector.add(event)
    snapshot = collector.snapshot()
    assert snapshot["user_turns"] == 3
    assert snapshot["latency_ms"]["median"] == 450.0  # user stops at +450, bot starts at +900
    assert len(snapshot["tool_calls"]) == 3
    assert snapshot["tokens"] == {"prompt": 90, "completion": 24}
    assert snapshot["interruptions"] == 1


@pytest.mark.anyio
async def test_the_stats_route_aggregates_recorded_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGBOX_DATA_DIR", str(tmp_path))
    import_plugin(PLUGIN)
    from call_metrics import PACKAGE
    from call_metrics.report import append_stats

    append_stats(
        {"run_id": 1, "node_id": "m", "latency_median_ms": 400, "interruptions": 2, "tokens": 50}
    )
    with anyio.fail_after(10):
        async with serve_in_memory(PACKAGE) as client:
            response: HttpResponseResult = await client.call(
                Method.HTTP_REQUEST,
                HttpRequestParams("GET", "/stats"),
                result_type=HttpResponseResult,
            )
    assert response.status == 200
    assert b'"runs":1' in response.body
