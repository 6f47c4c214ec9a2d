"""Benchmark: post-call completions per second through the embedded worker, 3 plugins per run,
with 0% and 5% injected handler crashes, against the same handlers called in-process (the floor).
Fails loudly if any (run, node) result is lost or recorded twice. Then the chaos figures: the
worker SIGKILLed 4 times over 200 runs (added into `lost_results` and `duplicate_results`;
`duplicate_window_nodes` is the nodes in flight at the kills: the most they can duplicate).
Writes bench/results/completion.json.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anyio

# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import arguments, metric, print_table, write_results
from bench._plugins import make_plugins
from host import HostConfig, PluginHost
from host.completion import EmbeddedWorker, SQLiteRunStore, enqueue

PLUGINS = 3


def definition(names: list[str]) -> dict[str, object]:
    return {"nodes": [{"id": n, "type": n, "data": {"name": n}} for n in names], "edges": []}


async def floor_rate(root: Path, names: list[str], runs: int) -> float:
    sys.path.insert(0, str(root / names[0]))
    for name in names[1:]:
        sys.path.insert(0, str(root / name))
    modules = [importlib.import_module(name) for name in names]
    started = time.perf_counter()
    for run_id in range(runs):
        for name, module in zip(names, modules, strict=True):
            context = SimpleNamespace(workflow_run_id=run_id, attempt=1)
            await module.run_completion(
                [{"id": name, "type": name, "data": {"name": name}}], context
            )
    return runs / (time.perf_counter() - started)


async def worker_rate(
    root: Path, data: Path, names: list[str], runs: int, crash_pct: float
) -> tuple[float, int, int]:
    config = HostConfig(
        plugins_root=root,
        data_dir=data,
        idle_timeout_s=None,
        extra_env={"BENCH_CRASH_PCT": str(crash_pct)},
    )
    store_path = data / f"runs-{crash_pct}.db"
    async with PluginHost(config) as plugins, SQLiteRunStore(store_path) as store:
        await plugins.registry.refresh()
        ids = [await store.create_run(workflow_definition=definition(names)) for _ in range(runs)]
        for run_id in ids:
            await enqueue(store, run_id)
        worker = EmbeddedWorker(store, plugins, concurrency=8)
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            while worker.finished.total() < runs:  # noqa: ASYNC110 - a benchmark's progress poll
                await anyio.sleep(0.01)
            await worker.drain()
        rate = runs / (time.perf_counter() - started)
    db = sqlite3.connect(store_path)
    counts = dict(
        db.execute("SELECT run_id, COUNT(*) FROM node_results GROUP BY run_id").fetchall()
    )
    db.close()
    lost = sum(PLUGINS - counts.get(run_id, 0) for run_id in ids if counts.get(run_id, 0) < PLUGINS)
    duplicated = sum(c - PLUGINS for c in counts.values() if c > PLUGINS)
    return rate, lost, duplicated


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    runs = 150 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "plugins", Path(tmp) / "data"
        names = make_plugins(root, PLUGINS, "done")
        async with PluginHost(HostConfig(plugins_root=root, data_dir=data)) as plugins:
            await plugins.install()
        floor = await floor_rate(root, names, runs)
        clean, lost_0, dup_0 = await worker_rate(root, data, names, runs, 0.0)
        crashy, lost_5, dup_5 = await worker_rate(root, data, names, runs, 5.0)
    lost, duplicated = lost_0 + lost_5, dup_0 + dup_5
    metrics = {
        "floor_runs_per_s": metric(floor, "runs/s", better="higher"),
        "runs_per_s_0pct": metric(clean, "runs/s", better="higher"),
        "runs_per_s_5pct": metric(crashy, "runs/s", better="higher"),
        "lost_results": metric(lost, "results", 0, "lower"),
        "duplicate_results": metric(duplicated, "results", 0, "lower"),
    }
    if lost or duplicated:
        print_table("Completion throughput", metrics)
        raise SystemExit(f"FAILED: {lost} lost and {duplicated} duplicated results")
    return metrics


def chaos(runs: int, kills: int) -> dict[str, dict[str, object]]:
    """The embedded worker (a process) SIGKILLed `kills` times over `runs` runs of 3 ledger
    plugins: lost and duplicated deliveries, and the window (nodes in flight at the kills)."""
    from tests.completion._scaleout import LEDGERS, Workers, in_flight_nodes, until_done
    from tests.completion.test_chaos import _create, chaos_counts

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        ids = anyio.run(_create, data, runs, None)
        workers = Workers.embedded(Path(tmp), 2.0)
        total, window = runs * len(LEDGERS), 0
        try:
            worker = workers.start()
            for kill in range(kills):
                anyio.run(
                    until_done, data / "runs.db", total * (kill + 1) // (kills + 2), workers, 600
                )
                workers.kill(worker)
                window += in_flight_nodes(data / "runs.db", worker.pid)
                worker = workers.start()
            anyio.run(until_done, data / "runs.db", total, workers, 600)
        finally:
            workers.stop_all()
        counts = chaos_counts(data, ids)
    if (
        counts["lost_results"]
        or counts["nodes_with_two_keys"]
        or counts["duplicate_results"] > window
    ):
        raise SystemExit(f"FAILED: chaos {counts}, window {window}")
    return {
        "chaos_kills": metric(kills, "SIGKILLs", better="lower"),
        "chaos_lost_results": metric(counts["lost_results"], "results", 0, "lower"),
        "chaos_duplicate_results": metric(
            counts["duplicate_results"], "deliveries", better="lower"
        ),
        "duplicate_window_nodes": metric(window, "nodes", better="lower"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    os.environ.setdefault("LOGURU_LEVEL", "WARNING")
    metrics = anyio.run(measure, args.quick)
    chaotic = chaos(100 if args.quick else 200, 4)
    for name in ("lost_results", "duplicate_results"):  # both phases; chaos may duplicate
        metrics[name]["value"] += chaotic.pop(f"chaos_{name}")["value"]
    metrics["duplicate_results"]["target"] = None  # bounded by the window, not zero
    metrics |= chaotic
    print_table("Completion throughput (3 plugins per run, embedded worker)", metrics)
    print(f"written: {write_results('completion', metrics)}")


if __name__ == "__main__":
    main()
