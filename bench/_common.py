"""Benchmark helpers: the results file format of DESIGN section 10, tables, percentiles."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

RESULTS = Path(__file__).resolve().parent / "results"


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a run under 30 s, same metrics")
    return parser.parse_args()


def metric(
    value: float, unit: str, target: float | None = None, better: str = "lower"
) -> dict[str, Any]:
    return {"value": round(value, 6), "unit": unit, "target": target, "better": better}


def write_results(name: str, metrics: dict[str, dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": metrics,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(title: str, metrics: dict[str, dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'metric':<32} {'value':>14} {'unit':<8} {'target':>10}  verdict")
    for name, m in metrics.items():
        target = m["target"]
        verdict = ""
        if target is not None:
            ok = m["value"] <= target if m["better"] == "lower" else m["value"] >= target
            verdict = "meets" if ok else "MISSES"
        shown = "-" if target is None else f"{target:g}"
        print(f"{name:<32} {m['value']:>14,.3f} {m['unit']:<8} {shown:>10}  {verdict}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


async def pipelined_rate(call: Callable[[], Awaitable[Any]], total: int, in_flight: int) -> float:
    """Calls per second for `total` calls of `call`, `in_flight` of them outstanding at a time."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(in_flight):
            group.start_soon(worker)
    return total / (time.perf_counter() - started)
