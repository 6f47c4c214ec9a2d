"""Benchmark: plugin cold start (spawn + handshake + spec) for 1 and 8 plugins, the warm node-type
listing from the spec cache, and the `python -c pass` floor, in one run. bench/results/startup.json.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import arguments, median, metric, print_table, write_results
from bench._plugins import make_plugins
from host import HostConfig, PluginHost
from sdk.protocol import Method, PingParams, PingResult


def python_floor_ms(repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


async def cold_start_ms(root: Path, data: Path, repeats: int) -> float:
    samples = []
    for attempt in range(repeats):
        config = HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None)
        async with PluginHost(config) as plugins:
            cache = data / "spec-cache"
            for stale in cache.glob("*.json"):
                stale.unlink()  # cold: no cached spec, a process must start
            started = time.perf_counter()
            await plugins.registry.refresh()
            samples.append((time.perf_counter() - started) * 1000)
            assert plugins.manifests, plugins.discovery_errors
            assert plugins.registry.spec_fetches == len(plugins.manifests), attempt
    return median(samples)


async def warm(root: Path, data: Path, repeats: int) -> tuple[float, float, float]:
    async with PluginHost(
        HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None)
    ) as plugins:
        started = time.perf_counter()
        await plugins.registry.refresh()
        refresh_ms = (time.perf_counter() - started) * 1000
        assert plugins.registry.spec_fetches == 0
        assert not any(h.starts for h in plugins.handles.values())
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            plugins.registry.all_node_specs()
            samples.append((time.perf_counter() - started) * 1000)
        assert plugins.manifests, plugins.discovery_errors
        handle = plugins.get(sorted(plugins.manifests)[0])
        ping: PingResult = await handle.call(Method.PING, PingParams(), result_type=PingResult)
        return median(samples), refresh_ms, ping.rss_bytes / 2**20


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        one, eight, data = Path(tmp) / "one", Path(tmp) / "eight", Path(tmp) / "data"
        make_plugins(one, 1, "solo")
        make_plugins(eight, 8)
        async with PluginHost(HostConfig(plugins_root=eight, data_dir=data)) as plugins:
            await plugins.install()  # venvs are built once; cold start is spawn + handshake + spec
        async with PluginHost(HostConfig(plugins_root=one, data_dir=data)) as plugins:
            await plugins.install()
        floor = python_floor_ms(repeats * 3)
        cold_1 = await cold_start_ms(one, data, repeats)
        cold_8 = await cold_start_ms(eight, data, repeats)
        listing_ms, warm_refresh_ms, rss = await warm(eight, data, 1000)
    return {
        "python_floor_ms": metric(floor, "ms"),
        "cold_start_1_ms": metric(cold_1, "ms"),
        "cold_start_8_ms": metric(cold_8, "ms"),
        "cold_8_to_1_ratio": metric(cold_8 / cold_1, "x", 2.5, "lower"),
        "cold_1_to_python_floor_ratio": metric(cold_1 / floor, "x"),
        "warm_node_types_ms": metric(listing_ms, "ms", 1.0, "lower"),
        "warm_refresh_from_cache_ms": metric(warm_refresh_ms, "ms"),
        "idle_rss_mb": metric(rss, "MiB"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    print_table("Plugin start-up (sandbox policy standard)", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('startup', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
