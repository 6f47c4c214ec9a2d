"""Benchmark: plugbox against its peer, the MCP Python SDK over stdio, doing the same echo.

In one run, the MCP SDK's stdio client and server (`bench/_mcp_server.py`, an `echo` tool) and a
plugbox plugin (a completion handler that echoes its node, started by the host under the
standard sandbox policy) are each measured for: the sequential round trip (median and p99),
throughput with 64 calls in flight, and start-to-first-call (spawn, handshake, first answer).
The raw blocking pipe echo of bench/rpc.py is measured in the same rounds: no round trip gets
below it, so MCP's round trip over it is the highest `mcp_to_plugbox_rtt_ratio` the run allows.
The MCP SDK is the `bench` extra (`make bench` installs it), never a runtime dependency.
Writes bench/results/peer_mcp.json.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import (
    arguments,
    median,
    metric,
    percentile,
    pipelined_rate,
    print_table,
    write_results,
)
from bench._cpu import machine_cpu_s, tree_cpu_s
from bench.rpc import floor_rtts
from host import HostConfig, PluginHost
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

try:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
except ImportError:
    sys.exit("the MCP Python SDK is not installed: `make bench` installs the `bench` extra")

SERVER = str(Path(__file__).resolve().parent / "_mcp_server.py")
TEXT = "hello plugbox"
IN_FLIGHT = 64
PLUGIN = """
from typing import Any

from sdk import IntegrationPackageSpec, register_package


async def run_completion(nodes: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    return {"echo": nodes[0]["text"]}


PACKAGE = register_package(IntegrationPackageSpec(name="echo", run_completion=run_completion))
"""
MANIFEST = 'name = "echo"\nversion = "0.0.1"\npackage = "echo"\n'

Call = Callable[[], Awaitable[Any]]


class Figures:
    """What one side measured: round trips (us), calls/s per round, start-to-first-call (ms)."""

    def __init__(self) -> None:
        self.rtts: list[float] = []
        self.rates: list[float] = []
        self.starts: list[float] = []
        self.start_cpu_ms: list[float] = []  # the start's CPU: the far side's and this process's
        self.host_cpu_us: list[float] = []  # per pipelined call, when the far side is known
        self.sequential_cpu_us: list[float] = []  # per sequential call, both sides together
        self.far_cpu_us: list[float] = []
        # Of the machine's cores during the pipelined calls: left idle, and used by other work
        # than this process and the far side (what no figure of ours accounts for).
        self.idle_share: list[float] = []
        self.other_share: list[float] = []

    async def measure(
        self,
        call: Call,
        started: tuple[float, float],
        count: int,
        total: int,
        far: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`far` names the far side's process (read once it runs) for its CPU per call; `started`
        is the wall clock and this process's CPU clock when the start began."""
        await call()
        self.starts.append((time.perf_counter() - started[0]) * 1000)
        far_pid = far()
        near_cpu = time.process_time() - started[1]
        self.start_cpu_ms.append(((tree_cpu_s(far_pid) if far_pid else 0.0) + near_cpu) * 1000)
        for _ in range(min(count, 50)):  # warm-up
            await call()
        far_cpu, host = tree_cpu_s(far_pid) if far_pid else 0.0, time.process_time()
        for _ in range(count):
            begun = time.perf_counter()
            await call()
            self.rtts.append((time.perf_counter() - begun) * 1e6)
        self.sequential_cpu_us.append((time.process_time() - host) / count * 1e6)
        if far_pid:
            self.sequential_cpu_us[-1] += (tree_cpu_s(far_pid) - far_cpu) / count * 1e6
        far_cpu = tree_cpu_s(far_pid) if far_pid else 0.0
        host = time.process_time()
        busy, idle = machine_cpu_s()
        wall = time.perf_counter()
        self.rates.append(await pipelined_rate(call, total, IN_FLIGHT))
        wall = time.perf_counter() - wall
        busy, idle = (now - then for now, then in zip(machine_cpu_s(), (busy, idle), strict=True))
        host = time.process_time() - host
        self.host_cpu_us.append(host / total * 1e6)
        if far_pid:
            far_cpu = tree_cpu_s(far_pid) - far_cpu
            self.far_cpu_us.append(far_cpu / total * 1e6)
            cores = (os.cpu_count() or 1) * wall
            self.idle_share.append(idle / cores)
            self.other_share.append(max(0.0, busy - host - far_cpu) / cores)


def mcp_server_pid() -> int | None:
    """The MCP server process this benchmark's stdio client started (a child of this one)."""
    for task in os.listdir("/proc/self/task"):
        for child in Path(f"/proc/self/task/{task}/children").read_text().split():
            with contextlib.suppress(OSError):
                if SERVER.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
    return None


async def mcp_round(figures: Figures, count: int, total: int) -> None:
    started = time.perf_counter(), time.process_time()
    server = StdioServerParameters(command=sys.executable, args=[SERVER])
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()

        async def call() -> Any:
            result = await session.call_tool("echo", {"text": TEXT})
            assert result.structured_content == {"result": TEXT}, result
            return result

        await figures.measure(call, started, count, total, far=mcp_server_pid)


async def plugbox_round(root: Path, data: Path, figures: Figures, count: int, total: int) -> None:
    params = CompletionRunParams(
        nodes=[{"id": "n1", "type": "echo", "text": TEXT}],
        context=CompletionContextWire(
            workflow_run_id=1, workflow_run={}, workflow_definition={}, organization_id=1
        ),
    )
    config = HostConfig(plugins_root=root, data_dir=data, idle_timeout_s=None)
    started = time.perf_counter(), time.process_time()
    async with PluginHost(config) as plugins:
        handle = plugins.get("echo")

        async def call() -> Any:
            reply = await handle.call(Calls.COMPLETION_RUN, params)
            assert reply.result == {"echo": TEXT}, reply
            return reply

        await figures.measure(call, started, count, total, far=lambda: handle.pid)


async def measure(rounds: int, count: int, total: int) -> tuple[Figures, Figures, list[float]]:
    mcp, plugbox, floor = Figures(), Figures(), []
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "plugins", Path(tmp) / "data"
        (root / "echo" / "echo").mkdir(parents=True)
        (root / "echo" / "plugin.toml").write_text(MANIFEST)
        (root / "echo" / "echo" / "__init__.py").write_text(PLUGIN)
        async with PluginHost(HostConfig(plugins_root=root, data_dir=data)) as plugins:
            await plugins.install()  # the venv is built once: a start is spawn + handshake
        for _ in range(rounds):  # interleaved, so load on the machine hits both alike
            await mcp_round(mcp, count, total)
            await plugbox_round(root, data, plugbox, count, total)
            floor.extend(floor_rtts(count))
    return mcp, plugbox, floor


def main() -> None:
    args = arguments(__doc__ or "")
    rounds, count, total = (2, 200, 1000) if args.quick else (4, 1000, 5000)
    mcp, plugbox, floor = anyio.run(measure, rounds, count, total)
    mcp_rtt, plugbox_rtt = median(mcp.rtts), median(plugbox.rtts)
    mcp_rate, plugbox_rate = median(mcp.rates), median(plugbox.rates)
    mcp_start, plugbox_start = median(mcp.starts), median(plugbox.starts)
    cpu_bound = 1e6 / max(median(plugbox.host_cpu_us), median(plugbox.far_cpu_us))
    metrics = {
        "mcp_rtt_median_us": metric(mcp_rtt, "us"),
        "mcp_rtt_p99_us": metric(percentile(mcp.rtts, 0.99), "us"),
        "mcp_calls_per_s": metric(mcp_rate, "calls/s"),
        "mcp_start_to_first_call_ms": metric(mcp_start, "ms"),
        "plugbox_rtt_median_us": metric(plugbox_rtt, "us"),
        "plugbox_rtt_p99_us": metric(percentile(plugbox.rtts, 0.99), "us"),
        "plugbox_calls_per_s": metric(plugbox_rate, "calls/s"),
        "plugbox_start_to_first_call_ms": metric(plugbox_start, "ms"),
        "floor_rtt_median_us": metric(median(floor), "us"),
        "mcp_to_plugbox_rtt_ratio": metric(mcp_rtt / plugbox_rtt, "x", 20, "higher"),
        # The bound: a plugbox round trip as fast as the raw pipe echo would reach this ratio.
        "mcp_to_floor_rtt_ratio": metric(mcp_rtt / median(floor), "x", better="higher"),
        # A sequential call's CPU, both processes together (they take turns: no overlap). When
        # the floor is a few us (busy cores wake at once), plugbox's round trip is about this.
        "plugbox_sequential_cpu_per_call_us": metric(median(plugbox.sequential_cpu_us), "us"),
        "mcp_sequential_cpu_per_call_us": metric(median(mcp.sequential_cpu_us), "us"),
        "plugbox_to_mcp_throughput_ratio": metric(plugbox_rate / mcp_rate, "x", 75, "higher"),
        "mcp_to_plugbox_start_ratio": metric(mcp_start / plugbox_start, "x", 3, "higher"),
        # The same starts in CPU (the far side's processes and this process, from the spawn to
        # the first answer), which the machine's load moves less than their wall time.
        "mcp_start_cpu_ms": metric(median(mcp.start_cpu_ms), "ms"),
        "plugbox_start_cpu_ms": metric(median(plugbox.start_cpu_ms), "ms"),
        "mcp_to_plugbox_start_cpu_ratio": metric(
            median(mcp.start_cpu_ms) / median(plugbox.start_cpu_ms), "x", better="higher"
        ),
        # Where a pipelined call's time goes (CPU per call; 2 cores run both sides at once).
        "plugbox_host_cpu_per_call_us": metric(median(plugbox.host_cpu_us), "us"),
        "plugbox_plugin_cpu_per_call_us": metric(median(plugbox.far_cpu_us), "us"),
        "mcp_client_cpu_per_call_us": metric(median(mcp.host_cpu_us), "us"),
        # What plugbox's own CPU per call allows: both processes busy all the time on free
        # cores, one call per max(host, plugin) CPU. Below it, the gap is waiting or the cores
        # other work took (the shares below); the bound over MCP's rate is the throughput
        # ratio this run's CPU per call would reach on a machine to itself.
        "plugbox_cpu_bound_calls_per_s": metric(cpu_bound, "calls/s"),
        "plugbox_cpu_bound_to_mcp_ratio": metric(cpu_bound / mcp_rate, "x", better="higher"),
        "plugbox_pipelined_idle_share": metric(median(plugbox.idle_share), "share"),
        "plugbox_pipelined_other_work_share": metric(median(plugbox.other_share), "share"),
    }
    print_table("plugbox vs the MCP Python SDK (stdio), the same echo", metrics)
    print(f"written: {write_results('peer_mcp', metrics)}")


if __name__ == "__main__":
    main()
