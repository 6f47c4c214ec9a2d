"""Benchmark: JSON-RPC round trips through the session against a raw pipe echo, over real pipes.

Measures in one run: (a) the floor, a raw echo of the same bytes between two Python processes;
(b) a sequential round trip through `RpcSession` to a child serving `echo`; (c) throughput with
64 requests in flight. Writes bench/results/rpc.json.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import anyio

# Run as a script: import from the repository, never from this folder (bench/http.py would
# shadow the stdlib's http).
sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from bench._common import arguments, median, metric, percentile, print_table, write_results
from sdk.protocol import (
    AsyncioSendStream,
    Request,
    RpcSession,
    encode_message,
    open_pipe_stream,
)

ROOT = str(Path(__file__).resolve().parent.parent)
CHILD = str(Path(__file__).resolve().parent / "_rpc_child.py")
PARAMS = {"text": "hello plugbox", "n": 42, "items": [1, 2, 3]}
FRAME = encode_message(Request(id=1, method="echo", params=PARAMS))


def floor_rtts(count: int) -> list[float]:
    """Raw pipe echo of one frame's bytes, in microseconds per round trip."""
    child = subprocess.Popen(
        [sys.executable, CHILD, "raw"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None  # noqa: PT018
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        child.stdin.write(FRAME)
        child.stdin.flush()
        child.stdout.readline()
        samples.append((time.perf_counter() - started) * 1e6)
    child.stdin.close()
    child.wait()
    child.stdout.close()
    return samples


async def rpc(count: int, pipelined: int) -> tuple[list[float], float]:
    # The same transport as the host's supervisor (host/sandbox/_policy.py): an asyncio
    # subprocess whose stdout is our own pipe, decoded in the loop's data callback.
    read_fd, write_fd = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, CHILD, "rpc", env={"PYTHONPATH": ROOT}, stdin=PIPE, stdout=write_fd
    )
    os.close(write_fd)
    assert process.stdin is not None
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", buffering=0), AsyncioSendStream(process.stdin)
    )
    session = RpcSession(stream, name="bench")
    async with session:
        for _ in range(200):  # warm-up
            await session.request("echo", PARAMS)
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await session.request("echo", PARAMS)
            samples.append((time.perf_counter() - started) * 1e6)
        rate = await _pipelined(session, pipelined)
    await process.wait()
    return samples, rate


async def _pipelined(session: RpcSession, total: int, in_flight: int = 64) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await session.request("echo", PARAMS)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(in_flight):
            group.start_soon(worker)
    return total / (time.perf_counter() - started)


def main() -> None:
    args = arguments(__doc__ or "")
    count, pipelined = (2000, 20000) if args.quick else (10000, 100000)
    floor = floor_rtts(count)
    samples, rate = anyio.run(rpc, count, pipelined)
    floor_median, rpc_median = median(floor), median(samples)
    metrics = {
        "floor_rtt_median_us": metric(floor_median, "us"),
        "rpc_rtt_median_us": metric(rpc_median, "us"),
        "rpc_rtt_p99_us": metric(percentile(samples, 0.99), "us"),
        "rpc_to_floor_ratio": metric(rpc_median / floor_median, "x", 2.0, "lower"),
        "pipelined_calls_per_s": metric(rate, "calls/s", 30000, "higher"),
    }
    print_table("JSON-RPC over pipes vs a raw pipe echo", metrics)
    print(f"written: {write_results('rpc', metrics)}")


if __name__ == "__main__":
    main()
