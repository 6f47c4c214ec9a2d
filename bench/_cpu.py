"""Benchmark helpers: CPU read where it is spent, and the least processes a start is held to.

`tree_cpu_s(pid)` sums each thread's schedstat (nanoseconds) over a live process tree, plus what
its members already reaped; `tree_by_command` splits it by command name; `machine_cpu_s()` is the
whole machine's busy and idle time (`/proc/stat`). `floors_ms(python, repeats)` runs the floors
(`python -c pass`, asyncio, pydantic and one model, both) for wall and CPU medians. Shared by
startup.py and peer_mcp.py.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from bench._common import median

CORES = len(os.sched_getaffinity(0))
TICKS = os.sysconf("SC_CLK_TCK")


def process_floor_ms(
    python: str, code: str = "pass", env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall and CPU milliseconds of one `python -c <code>` with the plugins' interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, env=env)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, used * 1000


# The least a process of each kind costs, with the same interpreter, unsandboxed (a sandbox only
# adds): what no plugin start serving on asyncio with a spec from pydantic models can go below.
_PYDANTIC_MODEL = """
from sdk import serve
serve.skip_pydantic_plugin_scan()  # as a start does: the cheapest pydantic import there is
import pydantic
class Model(pydantic.BaseModel):
    name: str = "x"
Model().model_dump(mode="json")
"""
FLOORS = {
    "python": "pass",  # the anchor
    "asyncio": "import asyncio\nasyncio.run(asyncio.sleep(0))",  # any asyncio server
    "pydantic_model": _PYDANTIC_MODEL,  # pydantic and one model, built and dumped
    "serving": "import asyncio\n" + _PYDANTIC_MODEL + "asyncio.run(asyncio.sleep(0))",  # both
}


def floors_ms(python: str, repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms of each of `FLOORS`, interleaved so load hits them alike."""
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}  # as the host sets it
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in FLOORS}
    for _ in range(repeats):
        for name, code in FLOORS.items():
            found[name].append(process_floor_ms(python, code, env))
    return {
        name: (median([w for w, _ in runs]), median([c for _, c in runs]))
        for name, runs in found.items()
    }


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a live process and its descendants (bwrap, then the plugin).

    Each live thread's `schedstat` (nanoseconds), plus the children it already reaped. Not the
    utime/stime of `/proc/<pid>/stat`: those are whole clock ticks (10 ms here), truncated per
    process and field, which undercounted a start of four processes by 20-30 ms."""
    try:
        own_ns, children = 0, []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stream:
                own_ns += int(stream.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as stream:
                children.extend(int(child) for child in stream.read().split())
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / TICKS  # cutime and cstime
    return own_ns / 1e9 + reaped + sum(tree_cpu_s(child) for child in children)


def tree_by_command(pid: int) -> dict[str, float]:
    """`tree_cpu_s` split by command name (`bwrap`, `python3.11`, ...) over the live tree; a
    Python process forked by a Python process (a zygote's worker) counts as `worker`."""
    totals: dict[str, float] = {}
    pending = [(pid, "")]
    while pending:
        current, parent = pending.pop()
        try:
            with open(f"/proc/{current}/comm", encoding="ascii") as stream:
                command = stream.read().strip()
            children = [
                int(child)
                for task in os.listdir(f"/proc/{current}/task")
                for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()
            ]
        except FileNotFoundError:
            continue
        own = tree_cpu_s(current) - sum(tree_cpu_s(child) for child in children)
        role = "worker" if command.startswith("python") and parent.startswith("python") else command
        totals[role] = totals.get(role, 0.0) + own
        pending.extend((child, command) for child in children)
    return totals


def machine_cpu_s() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine so far, all cores (`/proc/stat`)."""
    with open("/proc/stat", encoding="ascii") as stream:
        user, nice, system, idle, iowait, irq, softirq, steal = map(
            int, stream.readline().split()[1:9]
        )
    busy = user + nice + system + irq + softirq + steal  # steal: the hypervisor ran others
    return busy / TICKS, (idle + iowait) / TICKS
