"""Benchmark: plugin cold start (spawn + handshake + spec) for 1 and 8 plugins, the warm node-type
listing from the spec cache, the restart after a crash (a fork of the plugin's zygote, and a cold
sandbox start without one), and the `python -c pass` floor, in one run.
bench/results/startup.json.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import arguments, median, metric, print_table, write_results
from bench._cpu import CORES, floors_ms, machine_cpu_s, tree_by_command, tree_cpu_s
from bench._plugins import make_plugins
from host import HostConfig, PluginHost
from host._process import launch_spec
from host.sandbox import launch
from sdk.protocol import (
    Calls,
    CompletionContextWire,
    CompletionRunParams,
    PingParams,
    PingResult,
)


@dataclass
class ColdStarts:
    """Medians over the cold refreshes of one plugin set (see `cold_start_ms`)."""

    wall_ms: float
    cpu_ms: float  # per start: every process of one plugin's sandbox, launch to answered spec
    host_cpu_ms: float  # per start: the host process's own CPU over the refresh
    idle_share: float  # of the machine's cores, left idle during the refresh
    other_share: float  # of the machine's cores, used by anything but these starts
    worker_cpu_ms: float  # per start: the zygote's worker, from its fork to the answered spec
    loop_stall_ms: float  # with `tick`: the host loop's longest stall (see `LoopTicker`), else 0


class LoopTicker:
    """A task on the host's loop sleeping 1 ms at a time: its worst lateness is the longest
    time the loop could run nothing else (a launch blocking it stalls every live call)."""

    TICK_S = 0.001

    def __init__(self) -> None:
        self.max_late_ms = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await anyio.sleep(self.TICK_S)
            late = (time.perf_counter() - started - self.TICK_S) * 1000
            self.max_late_ms = max(self.max_late_ms, late)


async def cold_start_ms(
    root: Path, data: Path, repeats: int, *, zygote: bool = True, tick: bool = False
) -> ColdStarts:
    """Median wall time of a cold refresh, the CPU time each plugin's sandbox used (every
    process in it, from the launch to the answered `spec`), the host's own CPU time per start
    over the refresh (spawning, greeting, decoding, writing the spec cache), and how the
    machine's cores were used meanwhile: left idle, or taken by other work than these starts.

    With `tick`, a `LoopTicker` runs on the host's loop during each refresh, for the stall only:
    its thousand wake-ups a second are host CPU and take a core's share from the starts, so the
    refreshes whose time and CPU are reported run without it."""
    samples, cpu, host_cpu, idle_share, other_share, worker, stall = [], [], [], [], [], [], []
    for attempt in range(repeats):
        config = HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None, zygote=zygote)
        async with PluginHost(config) as plugins:
            cache = data / "spec-cache"
            for stale in cache.glob("*.json"):
                stale.unlink()  # cold: no cached spec, a process must start
            busy_before, idle_before = machine_cpu_s()
            ticker = LoopTicker()
            async with anyio.create_task_group() as ticking:
                if tick:
                    ticking.start_soon(ticker.run)
                started, host_started = time.perf_counter(), time.process_time()
                await plugins.registry.refresh()
                wall = time.perf_counter() - started
                host_s = time.process_time() - host_started
                ticking.cancel_scope.cancel()
            stall.append(ticker.max_late_ms)
            busy_after, idle_after = machine_cpu_s()
            busy, idle = busy_after - busy_before, idle_after - idle_before
            samples.append(wall * 1000)
            host_cpu.append(host_s * 1000 / len(plugins.manifests))
            assert plugins.manifests, plugins.discovery_errors
            assert plugins.registry.spec_fetches == len(plugins.manifests), attempt
            pids = [h.pid for h in plugins.handles.values() if h.pid is not None]
            starts = [tree_cpu_s(pid) for pid in pids]
            cpu.extend(s * 1000 for s in starts)
            worker.extend(tree_by_command(pid).get("worker", 0.0) * 1000 for pid in pids)
            total = max(busy + idle, 1e-9)
            idle_share.append(idle / total)
            other_share.append(max(0.0, busy - sum(starts) - host_s) / total)
    return ColdStarts(
        median(samples),
        median(cpu),
        median(host_cpu),
        median(idle_share),
        median(other_share),
        median(worker),
        median(stall),
    )


# What one start's CPU is made of: the plugin's sandbox and interpreter importing what a start
# imports, stage by stage, each stage's CPU read by the process itself (one process: no noise
# between runs); the collector off for the SDK's imports, as `sdk.serve` has it.
BREAKDOWN = """
import gc, os, time
gc.disable()
marks = [time.process_time()]  # the interpreter's start-up (and setpriv's, before its exec)
from sdk import serve
serve.skip_pydantic_plugin_scan()
import sdk.protocol, sdk._loop
sdk._loop.preload_loop()
marks.append(time.process_time())  # the serving core: asyncio, uvloop, anyio, msgspec, protocol
import pydantic
class _First(pydantic.BaseModel):  # pydantic's first model sets its schema machinery up
    name: str = "x"
_First().model_dump(mode="json")
marks.append(time.process_time())  # pydantic and a first model (one more than a start builds)
import sdk._server, sdk._compat, sdk._logging, sdk._stdio, sdk._egress, sdk._zygote
marks.append(time.process_time())  # the rest of the SDK: its spec models, the server
gc.freeze()
gc.enable()
import {package}
marks.append(time.process_time())  # the plugin's package
os.write(1, (" ".join(map(str, marks)) + "\\n").encode())
os.read(0, 1)
"""
STAGES = ("interpreter", "serving_core", "pydantic", "sdk", "package")


async def start_breakdown(root: Path, data: Path, repeats: int) -> dict[str, float]:
    """Median CPU ms of each stage of a start in the plugin's own sandbox, and of the sandbox's
    own processes (bwrap)."""
    name = make_manifest_names(root)[0]
    found: dict[str, list[float]] = {stage: [] for stage in ("sandbox", *STAGES)}
    async with PluginHost(HostConfig(plugins_root=root, data_dir=data)) as plugins:
        manifest = plugins.manifests[name]
        # The launch the host would do for this plugin, `-c <stages>` instead of `-m sdk.serve`.
        config = await plugins._launch_config(manifest)  # a benchmark may peek
        spec = launch_spec(manifest, config)
        code = BREAKDOWN.format(package=manifest.package)
        for _ in range(repeats):
            process = await launch(
                replace(spec, argv=[spec.argv[0], "-c", code]), config.sandbox_policy
            )
            try:
                stdout, line = await process.open_stdout(), b""
                while not line.endswith(b"\n"):
                    line += await stdout.receive()
                found["sandbox"].append(tree_by_command(process.pid).get("bwrap", 0.0) * 1000)
            finally:
                process.kill_group(signal.SIGKILL)
                await process.wait()
                await process.cleanup()
            marks = [0.0, *map(float, line.split())]
            for stage, (before, after) in zip(STAGES, itertools.pairwise(marks), strict=True):
                found[stage].append((after - before) * 1000)
    return {stage: median(values) for stage, values in found.items()}


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
        ping: PingResult = await handle.call(Calls.PING, PingParams())
        return median(samples), refresh_ms, ping.rss_bytes / 2**20


RESTARTS = 4  # below the breaker's 5 crashes a minute, so every restart is a real one


async def restart_to_ready_ms(root: Path, data: Path, *, zygote: bool) -> float:
    """Median time from a SIGKILL of the plugin's process to its first answered call."""
    config = HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None, zygote=zygote)
    samples = []
    async with PluginHost(config) as plugins:
        handle = plugins.get(sorted(plugins.manifests)[0])
        await handle.call(Calls.PING, PingParams())
        crashed = [anyio.Event()]
        handle.on_exit(lambda process, error: crashed[0].set())
        for _ in range(RESTARTS):
            crashed[0] = anyio.Event()
            pid = handle.plugin_pid
            assert pid is not None
            started = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            await crashed[0].wait()  # the host has seen the death: the next call restarts
            await handle.call(Calls.PING, PingParams())
            samples.append((time.perf_counter() - started) * 1000)
        assert handle.restarts == RESTARTS
        if zygote:
            assert handle.zygote is not None
            assert handle.zygote.launches == 1  # every restart was a fork
    return median(samples)


async def fork_per_run_overhead_ms(root: Path, data: Path, runs: int) -> tuple[float, float]:
    """Median completion run, in the serving process and in a fresh fork per run (ms)."""
    config = HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None)
    name = sorted(make_manifest_names(root))[0]
    params = CompletionRunParams(
        [{"id": "n1", "type": name, "data": {"name": "x"}}], CompletionContextWire(1, {}, {}, 1)
    )
    medians = []
    async with PluginHost(config) as plugins:
        handle = plugins.get(name)
        for fresh in (False, True):
            completion = handle.manifest.completion.model_copy(update={"fresh_process": fresh})
            handle.manifest = handle.manifest.model_copy(update={"completion": completion})
            await handle.call(Calls.COMPLETION_RUN, params)  # warm: the zygote is up
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                await handle.call(Calls.COMPLETION_RUN, params)
                samples.append((time.perf_counter() - started) * 1000)
            medians.append(median(samples))
    return medians[0], medians[1]


def make_manifest_names(root: Path) -> list[str]:
    return [path.parent.name for path in root.glob("*/plugin.toml")]


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        one, eight, data = Path(tmp) / "one", Path(tmp) / "eight", Path(tmp) / "data"
        make_plugins(one, 1, "solo")
        make_plugins(eight, 8)
        async with PluginHost(HostConfig(plugins_root=eight, data_dir=data)) as plugins:
            await plugins.install()  # venvs are built once; cold start is spawn + handshake + spec
        async with PluginHost(HostConfig(plugins_root=one, data_dir=data)) as plugins:
            venv = await plugins.venvs.ensure(plugins.manifests["solo0"])
        floors = floors_ms(str(venv.python), repeats * 3)
        one_start = await cold_start_ms(one, data, repeats)
        plain = await cold_start_ms(one, data, repeats, zygote=False)
        eight_starts = await cold_start_ms(eight, data, repeats)
        stall_1 = (await cold_start_ms(one, data, repeats, tick=True)).loop_stall_ms
        stall_8 = (await cold_start_ms(eight, data, repeats, tick=True)).loop_stall_ms
        cold_1, cpu_1, host_1 = one_start.wall_ms, one_start.cpu_ms, one_start.host_cpu_ms
        cold_1_plain, cpu_1_plain = plain.wall_ms, plain.cpu_ms
        cold_8, cpu_8, host_8 = eight_starts.wall_ms, eight_starts.cpu_ms, eight_starts.host_cpu_ms
        stages = await start_breakdown(one, data, repeats)
        listing_ms, warm_refresh_ms, rss = await warm(eight, data, 1000)
        restart_ms = await restart_to_ready_ms(one, data, zygote=True)
        restart_cold_ms = await restart_to_ready_ms(one, data, zygote=False)
        run_ms, fresh_run_ms = await fork_per_run_overhead_ms(one, data, 20 if quick else 60)
    floor, floor_cpu = floors["python"]
    least = {name: cpu for name, (_, cpu) in floors.items()}
    # A start is CPU work, the plugin's and the host's: 8 of them need 8 x that CPU time spread
    # over the cores, so no scheduling can bring the 8-to-1 ratio below this bound.
    bound = max(1.0, 8 * (cpu_1 + host_1) / CORES / cold_1)
    # The rest of a start: the zygote's set-up (stdio, logging), its fork, the worker's event
    # loop, the handshake and the `spec` answer.
    steps = {**stages, "fork_handshake_spec": cpu_1 - sum(stages.values())}
    return {
        "python_floor_ms": metric(floor, "ms"),
        "cold_start_1_ms": metric(cold_1, "ms"),
        "cold_start_8_ms": metric(cold_8, "ms"),
        "cold_8_to_1_ratio": metric(cold_8 / cold_1, "x", 2.5, "lower"),
        # The host loop's longest stall during a cold refresh (median over the refreshes): a
        # launch must not hold the loop, live calls share it.
        "launch_loop_stall_max_ms_1": metric(stall_1, "ms"),
        "launch_loop_stall_max_ms_8": metric(stall_8, "ms"),
        "cold_1_to_python_floor_ratio": metric(cold_1 / floor, "x"),
        "cpu_per_start_ms": metric(cpu_1, "ms"),
        "host_cpu_per_start_ms": metric(host_1, "ms"),
        # With 8 starting at once (more cache misses and migrations on shared cores).
        "cpu_per_start_of_8_ms": metric(cpu_8, "ms"),
        "host_cpu_per_start_of_8_ms": metric(host_8, "ms"),
        # What `cpu_per_start_ms` is made of, stage by stage (see STAGES and docs/benchmarks.md).
        **{f"start_cpu_{step}_ms": metric(value, "ms") for step, value in steps.items()},
        # Read directly from the start itself rather than by difference: the zygote's worker
        # (its fork, its event loop, the wire, `initialize` and `spec`).
        "start_cpu_worker_ms": metric(one_start.worker_cpu_ms, "ms"),
        # The same start without a zygote (one process imports and serves): what the fork costs.
        "cold_start_1_no_zygote_ms": metric(cold_1_plain, "ms"),
        "cpu_per_start_no_zygote_ms": metric(cpu_1_plain, "ms"),
        "python_floor_cpu_ms": metric(floor_cpu, "ms"),
        # The anchor: a start's CPU over the floor's wall time (an interpreter that only
        # starts is mostly CPU); and like for like, over the floor's own CPU time.
        "start_cpu_to_python_floor_ratio": metric(cpu_1 / floor, "x", 4.0, "lower"),
        "start_cpu_to_python_floor_cpu_ratio": metric(cpu_1 / floor_cpu, "x"),
        # The bound on the ratio above: the CPU of the least process of each kind (FLOORS) over
        # the same anchor. No start that serves on asyncio and builds its spec from a pydantic
        # model can have a lower `start_cpu_to_python_floor_ratio` than the `serving` one.
        "asyncio_floor_cpu_ms": metric(least["asyncio"], "ms"),
        "pydantic_model_floor_cpu_ms": metric(least["pydantic_model"], "ms"),
        "serving_floor_cpu_ms": metric(least["serving"], "ms"),
        "asyncio_floor_to_python_floor_ratio": metric(least["asyncio"] / floor, "x"),
        "pydantic_model_floor_to_python_floor_ratio": metric(least["pydantic_model"] / floor, "x"),
        "serving_floor_to_python_floor_ratio": metric(least["serving"] / floor, "x"),
        # How far a start is above that least process (sandbox, anyio, msgspec, the SDK's own
        # models, the zygote's fork, the handshake): 1.0 would be nothing but the floor.
        "start_cpu_to_serving_floor_ratio": metric(cpu_1 / least["serving"], "x"),
        "cold_8_to_1_cpu_bound_ratio": metric(bound, "x"),
        "cold_8_to_1_to_cpu_bound_ratio": metric(cold_8 / cold_1 / bound, "x", 1.2, "lower"),
        # The bound assumes free cores. How the cores were used during the 8 starts (from
        # /proc/stat): left idle (what a better scheduling of ours could still have used), and
        # taken by other work than these starts (what the bound cannot see); the same for one.
        "cold_8_idle_share": metric(eight_starts.idle_share, "share"),
        "cold_8_other_work_share": metric(eight_starts.other_share, "share"),
        "cold_1_idle_share": metric(one_start.idle_share, "share"),
        "cold_1_other_work_share": metric(one_start.other_share, "share"),
        # The bound with only the cores' share that other work left (the target stays on the
        # ratio above). Optimistic: kernel threads working for the starts (a network namespace's
        # teardown) count as other work.
        "cold_8_to_1_to_loaded_cpu_bound_ratio": metric(
            cold_8 / cold_1 / bound * (1 - eight_starts.other_share), "x"
        ),
        "warm_node_types_ms": metric(listing_ms, "ms", 1.0, "lower"),
        "warm_refresh_from_cache_ms": metric(warm_refresh_ms, "ms"),
        "idle_rss_mb": metric(rss, "MiB"),
        # Crash to first answered call: a fork of the zygote (target: 3 x the floor's wall time),
        # and the same without a zygote (a cold sandbox start) for comparison.
        "restart_to_ready_ms": metric(restart_ms, "ms", 3 * floor, "lower"),
        "restart_to_ready_to_python_floor_ratio": metric(restart_ms / floor, "x", 3.0, "lower"),
        "restart_cold_to_ready_ms": metric(restart_cold_ms, "ms"),
        "restart_cold_to_zygote_ratio": metric(restart_cold_ms / restart_ms, "x"),
        # `[completion] fresh_process = true`: each run forks, greets and ends its own worker.
        "completion_run_ms": metric(run_ms, "ms"),
        "completion_run_fresh_process_ms": metric(fresh_run_ms, "ms"),
        "fork_per_run_overhead_ms": metric(fresh_run_ms - run_ms, "ms"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    print_table("Plugin start-up (sandbox policy standard)", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('startup', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
