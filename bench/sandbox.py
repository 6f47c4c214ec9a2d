"""Benchmark: a plugin's spawn-to-ready time (spawn + handshake) per sandbox layer set, against the
unsandboxed floor (policy `off`), in one run. Writes bench/results/sandbox.json.
"""

from __future__ import annotations

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
from host.sandbox import SandboxPolicy, probe_layers


async def ready_ms(
    root: Path, data: Path, policy: SandboxPolicy, repeats: int
) -> tuple[float, tuple[str, ...]]:
    samples, layers = [], ()
    async with PluginHost(
        HostConfig(plugins_root=root, data_dir=data, sandbox_policy=policy)
    ) as plugins:
        await plugins.install()
        for _ in range(repeats):
            handle = plugins.get("solo0")
            started = time.perf_counter()
            await handle.start()
            samples.append((time.perf_counter() - started) * 1000)
            layers = handle.layers
            await handle.aclose()
    return median(samples), layers


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    repeats = 5 if quick else 15
    available = {layer.name: layer.available for layer in probe_layers()}
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "plugins", Path(tmp) / "data"
        make_plugins(root, 1, "solo")
        off, _ = await ready_ms(root, data, SandboxPolicy.off, repeats)
        on, layers = await ready_ms(root, data, SandboxPolicy.standard, repeats)
        off_again, _ = await ready_ms(root, data, SandboxPolicy.off, repeats)  # drift check
    floor = (off + off_again) / 2
    print(f"layers under 'standard' here: {', '.join(layers)} (available: {available})")
    return {
        "cold_start_unsandboxed_ms": metric(floor, "ms"),
        "cold_start_bwrap_ms": metric(on, "ms"),
        "bwrap_overhead_ratio": metric(on / floor, "x", 1.3, "lower"),
        "floor_drift_ratio": metric(off_again / off, "x"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    print_table("Spawn-to-ready per sandbox layer set", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('sandbox', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
