"""Benchmark: the live bridge's cost to a pipecat pipeline and its delivery rate to plugins.

The same lean pipeline (3 pass-through processors, no RTVI, no turn tracking) carries 50,000
`LLMTextFrame`s with (a) no observer, (b) one no-op observer — the fair floor, since pipecat's own
dispatch to a first observer costs 18-36 us per frame — and (c) the bridge with 5 real plugin
processes subscribed to every event. Writes bench/results/live.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

os.environ.setdefault("LOGURU_LEVEL", "WARNING")
# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from pipecat.frames import frames as f
from pipecat.observers.base_observer import BaseObserver, FramePushed

from bench._common import arguments, median, metric, print_table, write_results
from bench._plugins import make_plugins
from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore
from host.runtime import IntegrationRuntimeContext, create_runtime_sessions, finish_call
from host.runtime.scripted_call import run_frame_burst


class NoOp(BaseObserver):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(observe_every_push=False)

    async def on_push_frame(self, data: FramePushed) -> None:
        return None


async def wall(frames: int, attach: Any = None) -> float:
    started = time.perf_counter()
    await run_frame_burst([f.LLMTextFrame("token ") for _ in range(frames)], attach=attach)
    return time.perf_counter() - started


async def bridged(frames: int, root: Path, data: Path) -> tuple[float, float, int]:
    async with (
        PluginHost(HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None)) as plugins,
        SQLiteRunStore(data / "runs.db") as store,
    ):
        await plugins.registry.refresh()
        graph = {"nodes": {n: {"id": n, "type": n, "data": {"name": n}} for n in plugins.manifests}}
        run_id = await store.create_run(workflow_definition={"nodes": []})
        sessions = await create_runtime_sessions(
            IntegrationRuntimeContext(run_id, workflow_graph=graph), plugins=plugins
        )
        for session in sessions:
            # A 50,000-frame burst queued up front keeps pipecat's tasks busy without yielding,
            # so the pumps mostly run once it is done: size the queues for the burst and
            # measure delivery, not overflow (a live call paces its frames).
            assert session.queue is not None
            session.queue.capacity = frames + 10
        started = time.perf_counter()

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        await run_frame_burst([f.LLMTextFrame("token ") for _ in range(frames)], attach=attach)
        pipeline_s = time.perf_counter() - started
        logs = await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
        delivered_s = time.perf_counter() - started
        received = sum(int(logs[name]["events"]) for name in plugins.manifests if name in logs)
        dropped = sum(int(s.delivery()["dropped"]) for s in sessions)
    return pipeline_s, received / delivered_s, dropped


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    frames, repeats = (10_000, 2) if quick else (50_000, 3)
    bare = median([await wall(frames) for _ in range(repeats)])
    noop = median(
        [await wall(frames, lambda worker: worker.add_observer(NoOp())) for _ in range(repeats)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "plugins", Path(tmp) / "data"
        make_plugins(root, 5, "live")
        async with PluginHost(HostConfig(plugins_root=root, data_dir=data)) as plugins:
            await plugins.install()
        runs = [await bridged(frames, root, data) for _ in range(repeats)]
    bridged_s = median([r[0] for r in runs])
    rate = median([r[1] for r in runs])
    print(f"events dropped across runs: {[r[2] for r in runs]}")
    return {
        "baseline_wall_s": metric(noop, "s"),
        "bare_wall_s": metric(bare, "s"),
        "bridged_wall_s": metric(bridged_s, "s"),
        "overhead_ratio": metric(bridged_s / noop, "x", 1.15, "lower"),
        "overhead_vs_bare_ratio": metric(bridged_s / bare, "x"),
        "per_frame_overhead_us": metric((bridged_s - noop) / frames * 1e6, "us"),
        "events_per_s": metric(rate, "events/s", 50_000, "higher"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    print_table("Live bridge: 5 plugins on a lean pipeline", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('live', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
