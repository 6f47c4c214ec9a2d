"""Benchmark: the call loop's longest stall while one plugin floods its logs (issue #14).

A plugin opens its live session, then writes 200,000 stderr lines and sends 100,000 `log`
notifications while scripted calls run on the host's loop. A ticker on that loop sleeps 1 ms at a
time and records how late each wake-up is: the longest lateness is the longest stall a call saw. It
also records the loop thread's own CPU time per tick (`time.thread_time`): the work the host did
without yielding, which other processes on a loaded machine cannot inflate (the wall-clock stall
includes the time the OS gave the core to someone else). Measured twice in one run: without the
flood (the machine's own floor) and with it; also the lines the host dropped past its budget.
Writes bench/results/flood.json.
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
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import arguments, metric, print_table, write_results
from host import HostConfig, PluginHost
from host.runtime import IntegrationRuntimeContext, open_call
from plugbox_demo.scripted_call import run_scripted_call

PLUGIN = """
import asyncio, os, threading
from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec,
                 IntegrationRuntimeSession, NodeCategory, NodeExample, build_spec, node_spec,
                 register_package, _server)
from sdk.protocol import LogParams

LINES, NOTES = int(os.environ["FLOOD_LINES"]), int(os.environ["FLOOD_NOTES"])
_attach, SESSION = _server.PluginServer.attach, {}


def attach(self, session):  # a plugin may patch the SDK in its own process: it reaches the wire
    SESSION["s"] = session
    return _attach(self, session)


_server.PluginServer.attach = attach


@node_spec(name="flood", display_name="flood", description="Floods its logs.",
           category=NodeCategory.integration, icon="Gauge",
           examples=[NodeExample(name="x", data={"name": "x"})])
class Node(BaseNodeData):
    pass


def write_stderr():
    block = b"".join(b"flood line %d\\n" % i for i in range(1000))
    for _ in range(LINES // 1000):
        os.write(2, block)


async def notify():
    for i in range(NOTES):
        await SESSION["s"].notify("log", LogParams(level="info", message=f"note {i}"))


class Session(IntegrationRuntimeSession):
    name = "flood"

    async def on_call_finished(self, *, gathered_context):
        return {"flood": {"done": True}}


TASKS = set()


async def create_runtime_sessions(context):
    if LINES or NOTES:
        threading.Thread(target=write_stderr, daemon=True).start()
        task = asyncio.get_running_loop().create_task(notify())
        TASKS.add(task)
    return [Session()]


PACKAGE = register_package(IntegrationPackageSpec(
    name="flood", nodes=(IntegrationNodeRegistration("flood", Node, build_spec(Node)),),
    create_runtime_sessions=create_runtime_sessions))
"""


async def ticker(stalls: list[float], cpu: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        before, before_cpu = time.perf_counter(), time.thread_time()
        await anyio.sleep(0.001)
        stalls.append(time.perf_counter() - before - 0.001)
        cpu.append(time.thread_time() - before_cpu)


async def one_run(root: Path, lines: int, notes: int, calls: int) -> dict[str, float]:
    config = HostConfig(
        plugins_root=root / "plugins",
        data_dir=root / f"data-{lines}",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"FLOOD_LINES": str(lines), "FLOOD_NOTES": str(notes)},
    )
    graph = {"nodes": {"f": {"id": "f", "type": "flood", "data": {"name": "f"}}}}
    stalls: list[float] = []
    cpu: list[float] = []  # the loop thread's own CPU time per tick: what load cannot inflate
    async with PluginHost(config) as plugins:
        await plugins.registry.refresh()
        handle = plugins.get("flood")
        await handle.start()
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(ticker, stalls, cpu, stop)
            for run_id in range(calls):
                context = IntegrationRuntimeContext(run_id, workflow_graph=graph, user_config={})
                async with open_call(context, plugins=plugins) as sessions:

                    def attach(worker: Any, sessions: Any = sessions) -> None:
                        for session in sessions:
                            session.attach(worker)

                    await run_scripted_call(attach=attach)
                    for session in sessions:
                        await session.on_call_finished(gathered_context={})
            stop.set()
        proc = handle._proc
        dropped = (proc.stderr.budget.dropped if proc else 0) + handle._log_budget.dropped
    stalls.sort()
    return {
        "max_ms": stalls[-1] * 1000,
        "cpu_max_ms": max(cpu) * 1000,
        "p99_ms": stalls[int(len(stalls) * 0.99)] * 1000,
        "dropped": float(dropped),
    }


async def main() -> None:
    args = arguments(__doc__ or "")
    calls = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "plugins" / "flood" / "flood").mkdir(parents=True)
        (root / "plugins" / "flood" / "plugin.toml").write_text(
            'name = "flood"\npackage = "flood"\n'
        )
        (root / "plugins" / "flood" / "flood" / "__init__.py").write_text(PLUGIN)
        quiet = await one_run(root, 0, 0, calls)
        flood = await one_run(root, 200_000, 100_000, calls)
    metrics = {
        "stall_max_ms_quiet": metric(quiet["max_ms"], "ms"),
        "stall_max_ms_flood": metric(flood["max_ms"], "ms", target=10.0),
        "stall_p99_ms_flood": metric(flood["p99_ms"], "ms"),
        "loop_cpu_per_tick_max_ms_quiet": metric(quiet["cpu_max_ms"], "ms"),
        "loop_cpu_per_tick_max_ms_flood": metric(flood["cpu_max_ms"], "ms", target=10.0),
        "lines_dropped_flood": metric(flood["dropped"], "lines", better="higher"),
    }
    print_table("flood", metrics)
    print(write_results("flood", metrics))


if __name__ == "__main__":
    anyio.run(main)
