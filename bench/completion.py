"""Benchmark: post-call completions per second through the embedded worker, 3 plugins per run,
with 0% and 5% injected handler crashes, against the same handlers called in-process (the floor).
Fails loudly if any (run, node) result is lost or recorded twice. Then the run store backends:
runs/s with 1 and 2 worker processes on SQLite (one file) and on PostgreSQL (a real server in a
temporary directory, fsync on like SQLite's WAL; skipped with the reason where it cannot run),
and PostgreSQL's ratio to SQLite. Then the chaos figures: the worker SIGKILLed 4 times over 200
runs (added into `lost_results` and `duplicate_results`; `duplicate_window_nodes` is measured at
each kill: the nodes the plugins had delivered that the run store had not recorded, which the
next worker delivers again). Fails if duplicates exceed the kills (the delivery gate allows one
call in that window per worker). Writes bench/results/completion.json.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
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
from host.store import JobState, RunStore, open_store

PLUGINS = 3
REPO = Path(__file__).resolve().parent.parent
# One worker process: plugins started before the clock starts, then jobs until told to stop.
BENCH_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import anyio
    from host import HostConfig, PluginHost
    from host.completion import EmbeddedWorker
    from host.completion._arq import ready_plugins
    from host.store import open_store

    root, data, url = sys.argv[1:4]

    async def main():
        config = HostConfig(plugins_root=Path(root), data_dir=Path(data), idle_timeout_s=None)
        async with PluginHost(config) as plugins, open_store(url, data_dir=Path(data)) as store:
            await ready_plugins(plugins)
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            worker = EmbeddedWorker(store, plugins, concurrency=8)
            async with anyio.create_task_group() as group:
                group.start_soon(worker.run)
                await anyio.to_thread.run_sync(sys.stdin.readline)
                await worker.drain()

    anyio.run(main)
    """
)


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
            while _finished(worker) < runs:  # noqa: ASYNC110 - a benchmark's progress poll
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


def _finished(worker: EmbeddedWorker) -> int:
    """Runs that ended (a deferred one left as `pending` and comes back)."""
    return sum(worker.finished[state] for state in ("done", "partial", "failed"))


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


async def store_rate(
    root: Path, data: Path, names: list[str], url: str, workers: int, runs: int
) -> float:
    """Runs per second through `workers` worker processes sharing the run store at `url`."""
    async with open_store(url, data_dir=data) as store:
        ids = [await store.create_run(workflow_definition=definition(names)) for _ in range(runs)]
        for run_id in ids:
            await store.enqueue(run_id)
        argv = [sys.executable, "-c", BENCH_WORKER, str(root), str(data), url]
        env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
        procs = [_spawn(argv, env) for _ in range(workers)]
        try:
            for proc in procs:  # every worker's plugins are up before the clock starts
                assert proc.stdout is not None
                line = await anyio.to_thread.run_sync(proc.stdout.readline)
                if line.strip() != b"ready":
                    raise SystemExit(f"FAILED: a bench worker did not start ({line!r})")
            started = time.perf_counter()
            for proc in procs:
                _tell(proc, "go")
            while await _unfinished(store):  # noqa: ASYNC110 - a benchmark's progress poll
                await anyio.sleep(0.02)
            rate = runs / (time.perf_counter() - started)
            for proc in procs:
                _tell(proc, "stop")
            for proc in procs:
                await anyio.to_thread.run_sync(proc.wait, 60)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        summaries = await store.run_summaries(limit=runs)
    wrong = [s.run_id for s in summaries if (s.done, s.recorded) != (PLUGINS, PLUGINS)]
    if len(summaries) != runs or wrong:
        raise SystemExit(f"FAILED: {url.split('@')[-1]}: runs without {PLUGINS} results: {wrong}")
    return rate


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, cwd=REPO, stdin=pipe, stdout=pipe, env=env)


async def _unfinished(store: RunStore) -> bool:
    pending = await store.list_jobs(state=JobState.PENDING, limit=1)
    return bool(pending or await store.list_jobs(state=JobState.RUNNING, limit=1))


def _tell(proc: subprocess.Popen[bytes], word: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{word}\n".encode())
    proc.stdin.flush()


async def backends(quick: bool) -> dict[str, dict[str, object]]:
    """runs/s on SQLite and PostgreSQL with 1 and 2 worker processes, and their ratios."""
    from tests.completion._postgres import PostgresServer

    runs = 100 if quick else 400
    server = PostgresServer.find(fsync=True)
    metrics: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "plugins", Path(tmp) / "data"
        names = make_plugins(root, PLUGINS, "done")
        async with PluginHost(HostConfig(plugins_root=root, data_dir=data)) as plugins:
            await plugins.install()
        if isinstance(server, str):
            print(f"PostgreSQL skipped: {server}")
        else:
            await anyio.to_thread.run_sync(server.start)
        try:
            for workers in (1, 2):
                sqlite_url = f"sqlite:///{data / f'runs-{workers}w.sqlite3'}"
                lite = await store_rate(root, data, names, sqlite_url, workers, runs)
                metrics[f"sqlite_runs_per_s_{workers}w"] = metric(lite, "runs/s", better="higher")
                if isinstance(server, str):
                    continue
                url = f"{server.url}?schema=bench_{uuid.uuid4().hex[:8]}"
                pg = await store_rate(root, data, names, url, workers, runs)
                metrics[f"postgres_runs_per_s_{workers}w"] = metric(pg, "runs/s", better="higher")
                metrics[f"postgres_to_sqlite_{workers}w"] = metric(pg / lite, "x", better="higher")
        finally:
            if not isinstance(server, str):
                await anyio.to_thread.run_sync(server.remove)
    return metrics


def chaos(runs: int, kills: int) -> dict[str, dict[str, object]]:
    """The embedded worker (a process) SIGKILLed `kills` times over `runs` runs of 3 ledger
    plugins: lost and duplicated deliveries, and the window (delivered, unrecorded at the kills)."""
    from tests.completion._scaleout import LEDGERS, Workers, delivered_unrecorded, until_done
    from tests.completion.test_chaos import _create, chaos_counts

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        ids = anyio.run(_create, data, runs, None)
        workers = Workers.embedded(Path(tmp), 4.0)
        total, window = runs * len(LEDGERS), 0
        try:
            worker = workers.start()
            for kill in range(kills):
                anyio.run(
                    until_done, data / "runs.db", total * (kill + 1) // (kills + 2), workers, 600
                )
                workers.kill(worker)
                window += delivered_unrecorded(data, worker.pid)
                worker = workers.start()
            anyio.run(until_done, data / "runs.db", total, workers, 600)
        finally:
            workers.stop_all()
        counts = chaos_counts(data, ids)
    if (
        counts["lost_results"]
        or counts["nodes_with_two_keys"]
        or counts["duplicate_results"] > kills
        or window > kills
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
    metrics |= anyio.run(backends, args.quick)
    chaotic = chaos(100 if args.quick else 200, 4)
    for name in ("lost_results", "duplicate_results"):  # both phases; chaos may duplicate
        metrics[name]["value"] += chaotic.pop(f"chaos_{name}")["value"]
    metrics["duplicate_results"]["target"] = None  # bounded by the window, not zero
    metrics |= chaotic
    print_table("Completion throughput (3 plugins per run, embedded worker)", metrics)
    print(f"written: {write_results('completion', metrics)}")


if __name__ == "__main__":
    main()
