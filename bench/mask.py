"""Benchmark: 10,000 `/api/v1/workflows/mask` requests (and `/validate` ones, which call a plugin),
each carrying a secret never seen before: latency p50/p99 at the start and the end of the run, the
host's resident memory at the start and the end, and how many secrets the host's scrubber still
knows afterwards; then the scrubber's matcher alone with 10,000 secrets held at once (10,000
concurrent runs): the cost of holding and releasing one, and of scrubbing a log line with them
all known. Before secrets became request-scoped, every request grew one host-wide list and
recompiled its regex (latency 4.7 -> 180 ms and RSS 93 -> 442 MB after 3000 requests).
Writes bench/results/mask.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/http.py is named like the stdlib's `http`: drop this folder from the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import resource
import tempfile
import time
from typing import Any

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import arguments, metric, percentile, print_table, write_results
from host import HostConfig, PluginHost
from host.api import create_app
from sdk.protocol import SecretScrubber

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "api_plugins"
WINDOW = 500  # requests per latency window (the first and the last)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def definition(index: int) -> dict[str, Any]:
    secret = f"sk-distinct-secret-{index:08d}-{'x' * 24}"
    node = {"id": "a", "type": "echo_node", "data": {"name": "a", "api_key": secret}}
    return {"nodes": [node], "edges": []}


async def timed(client: httpx.AsyncClient, path: str, count: int, start: int) -> list[float]:
    latencies = []
    for index in range(start, start + count):
        began = time.perf_counter()
        answer = await client.post(path, json=definition(index))
        latencies.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text
    return latencies


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    total = 2_000 if quick else 10_000
    validations = 200 if quick else 1_000
    with tempfile.TemporaryDirectory() as tmp:
        config = HostConfig(
            plugins_root=FIXTURES, data_dir=Path(tmp), use_venvs=False, idle_timeout_s=None
        )
        async with PluginHost(config) as plugins:
            app = create_app(plugins)
            await app.state.plugbox.ready()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await timed(client, "/api/v1/workflows/mask", 50, -50)  # warm up
                rss_start = rss_mib()
                first = await timed(client, "/api/v1/workflows/mask", WINDOW, 0)
                await timed(client, "/api/v1/workflows/mask", total - 2 * WINDOW, WINDOW)
                last = await timed(client, "/api/v1/workflows/mask", WINDOW, total - WINDOW)
                validate = await timed(client, "/api/v1/workflows/validate", validations, total)
                rss_end = rss_mib()
                known = plugins.scrubber.known
    return {
        "mask_requests": metric(total, "count", better="higher"),
        "mask_p50_first_ms": metric(percentile(first, 0.5), "ms"),
        "mask_p99_first_ms": metric(percentile(first, 0.99), "ms"),
        "mask_p50_last_ms": metric(percentile(last, 0.5), "ms"),
        "mask_p99_last_ms": metric(percentile(last, 0.99), "ms"),
        "mask_p50_growth": metric(percentile(last, 0.5) / percentile(first, 0.5), "x", 1.5),
        "validate_p50_ms": metric(percentile(validate, 0.5), "ms"),
        "validate_p99_ms": metric(percentile(validate, 0.99), "ms"),
        "rss_start_mib": metric(rss_start, "MiB"),
        "rss_end_mib": metric(rss_end, "MiB"),
        "rss_growth_mib": metric(rss_end - rss_start, "MiB", 20),
        "secrets_known_after": metric(known, "count", 0),
    }


def matcher_figures(count: int) -> dict[str, dict[str, object]]:
    """Hold `count` distinct secrets at once, scrub log lines, release them all."""
    scrubber = SecretScrubber()
    began = time.perf_counter()
    releases = [scrubber.hold([f"held-{i:08d}-{'y' * 20}"]) for i in range(count)]
    hold_us = (time.perf_counter() - began) / count * 1e6
    scrubber._matcher.wait_idle(30)  # a background rebuild, if one runs, finishes first
    line = f"provider answered 401 for held-{count // 2:08d}-{'y' * 20} after 3 retries " * 3
    scans = []
    for _ in range(2_000):
        began = time.perf_counter()
        scrubbed = scrubber.scrub_text(line)
        scans.append((time.perf_counter() - began) * 1e6)
    assert "held-" not in scrubbed
    began = time.perf_counter()
    for release in releases:
        release()
    release_us = (time.perf_counter() - began) / count * 1e6
    return {
        "held_secrets": metric(count, "count", better="higher"),
        "hold_one_us": metric(hold_us, "us"),
        "release_one_us": metric(release_us, "us"),
        "scrub_line_p50_us": metric(percentile(scans, 0.5), "us"),
        "scrub_line_p99_us": metric(percentile(scans, 0.99), "us"),
        "held_known_after": metric(scrubber.known, "count", 0),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    metrics |= matcher_figures(2_000 if args.quick else 10_000)
    print_table("Masking: distinct secrets per request", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('mask', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
