"""Benchmark: JSON-RPC round trips through the session against two anchors, over real pipes.

Measured in one run, interleaved in rounds so that load on a shared machine hits every figure
alike: (a) the floor, a raw blocking echo of the same bytes between two Python processes;
(b) the minimal asyncio echo a hand-written client would be (host on asyncio's loop: write,
drain, readline, msgspec decode; the far side a blocking msgspec echo); (c) plugbox's
`RpcSession` to a child serving `echo` as an inline function (answered in the loop's data
callback), with the plugin on uvloop or asyncio and the host on either loop, and once as a
coroutine (a task per request, as the SDK's handlers run); (d) the same session against (b)'s
blocking far side, the bound no plugin can beat; each sequentially and with 64 requests in
flight. Writes bench/results/rpc.json.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
import msgspec

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
from sdk._loop import loop_name
from sdk.protocol import AsyncioSendStream, Request, RpcSession, encode_message, open_pipe_stream

ROOT = str(Path(__file__).resolve().parent.parent)
CHILD = str(Path(__file__).resolve().parent / "_rpc_child.py")
PARAMS = {"text": "hello plugbox", "n": 42, "items": [1, 2, 3]}
FRAME = encode_message(Request(id=1, method="echo", params=PARAMS))
IN_FLIGHT = 64
WARM_UP = 200
# (host on uvloop, plugin loop, plugin's handler) for each plugbox configuration measured.
# "blocking_child": the host's session against the anchor's own blocking msgspec echo, the
# cheapest far side there is; no plugin, on any loop, answers sooner, so its round trip over
# the anchor's is the lowest `rpc_to_asyncio_echo_ratio` this host session allows in the run.
CONFIGS = {
    "plugin_asyncio": (False, "asyncio", "inline"),
    "": (False, "uvloop", "inline"),
    "uvloop": (True, "uvloop", "inline"),
    "async_handler": (False, "uvloop", "async"),
    "blocking_child": (False, "blocking", "inline"),
}


def floor_rtts(count: int) -> list[float]:
    """Raw pipe echo of one frame's bytes, in microseconds per round trip."""
    child = subprocess.Popen([sys.executable, CHILD, "raw"], stdin=PIPE, stdout=PIPE)
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


async def asyncio_echo(count: int, pipelined: int) -> tuple[list[float], float]:
    """The minimal asyncio + msgspec client: what one would write without plugbox."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, CHILD, "msgspec", env={"PYTHONPATH": ROOT}, stdin=PIPE, stdout=PIPE
    )
    assert process.stdin is not None and process.stdout is not None  # noqa: PT018
    writer, reader = process.stdin, process.stdout
    encode, decode = msgspec.json.Encoder().encode, msgspec.json.Decoder().decode
    ids = itertools.count()

    def frame(call_id: int) -> bytes:
        return encode({"jsonrpc": "2.0", "id": call_id, "method": "echo", "params": PARAMS})

    # One write per call: two (frame, then newline) would cost the anchor a second system call
    # and could wake the far side before its line is whole, flattering plugbox.
    async def call() -> Any:
        writer.write(frame(next(ids)) + b"\n")
        await writer.drain()
        return decode(await reader.readline())["result"]

    samples = await _sequential(call, count)
    futures: dict[int, asyncio.Future[Any]] = {}

    async def read_replies() -> None:
        while line := await reader.readline():
            reply = decode(line)
            futures.pop(reply["id"]).set_result(reply["result"])

    async def pipelined_call() -> Any:
        call_id = next(ids)
        future = futures[call_id] = asyncio.get_running_loop().create_future()
        writer.write(frame(call_id) + b"\n")
        await writer.drain()
        return await future

    reading = asyncio.create_task(read_replies())
    rate = await pipelined_rate(pipelined_call, pipelined, IN_FLIGHT)
    writer.close()
    await reading
    await process.wait()
    return samples, rate


async def plugbox_rpc(
    plugin_loop: str, handler: str, count: int, pipelined: int
) -> tuple[list[float], float]:
    # The same transport as the host's supervisor (host/sandbox/_base.py): an asyncio
    # subprocess whose stdout is our own pipe, decoded in the loop's data callback.
    read_fd, write_fd = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        CHILD,
        "msgspec" if plugin_loop == "blocking" else "rpc",
        env={"PYTHONPATH": ROOT, "PLUGBOX_LOOP": plugin_loop, "BENCH_HANDLER": handler},
        stdin=PIPE,
        stdout=write_fd,
    )
    os.close(write_fd)
    assert process.stdin is not None
    stream = await open_pipe_stream(
        os.fdopen(read_fd, "rb", buffering=0), AsyncioSendStream(process.stdin)
    )
    session = RpcSession(stream, name="bench")
    async with session:
        samples = await _sequential(lambda: session.request("echo", PARAMS), count)
        rate = await pipelined_rate(lambda: session.request("echo", PARAMS), pipelined, IN_FLIGHT)
    await process.wait()
    return samples, rate


async def _sequential(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    for _ in range(WARM_UP):
        assert await call() == PARAMS
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def measure(rounds: int, count: int, pipelined: int) -> dict[str, tuple[list[float], list[float]]]:
    """Every figure, `rounds` times in turn: name -> (round-trip samples, calls/s per round)."""
    figures: dict[str, tuple[list[float], list[float]]] = {}

    def add(name: str, samples: list[float], rate: float = 0.0) -> None:
        rtts, rates = figures.setdefault(name, ([], []))
        rtts.extend(samples)
        rates.append(rate)

    for _ in range(rounds):
        add("floor", floor_rtts(count))
        add("asyncio_echo", *anyio.run(asyncio_echo, count, pipelined))
        for name, (host_uvloop, plugin_loop, handler) in CONFIGS.items():
            result = anyio.run(
                plugbox_rpc,
                plugin_loop,
                handler,
                count,
                pipelined,
                backend_options={"use_uvloop": host_uvloop},
            )
            add(name, *result)
    return figures


def main() -> None:
    args = arguments(__doc__ or "")
    if loop_name() != "uvloop":
        sys.exit("uvloop is not installed: `make bench` installs it (an SDK dependency on Linux)")
    rounds, count, pipelined = (3, 1000, 8000) if args.quick else (5, 4000, 40000)
    figures = measure(rounds, count, pipelined)
    floor, echo = median(figures["floor"][0]), median(figures["asyncio_echo"][0])
    echo_rate = median(figures["asyncio_echo"][1])
    rpc = {name: median(figures[name][0]) for name in CONFIGS}
    rate = {name: median(figures[name][1]) for name in CONFIGS}
    metrics = {
        "floor_rtt_median_us": metric(floor, "us"),
        "asyncio_echo_rtt_median_us": metric(echo, "us"),
        "asyncio_echo_calls_per_s": metric(echo_rate, "calls/s", better="higher"),
        "rpc_plugin_asyncio_rtt_median_us": metric(rpc["plugin_asyncio"], "us"),
        "rpc_rtt_median_us": metric(rpc[""], "us"),
        "rpc_rtt_p99_us": metric(percentile(figures[""][0], 0.99), "us"),
        "rpc_uvloop_rtt_median_us": metric(rpc["uvloop"], "us"),
        "rpc_async_handler_rtt_median_us": metric(rpc["async_handler"], "us"),
        "rpc_blocking_child_rtt_median_us": metric(rpc["blocking_child"], "us"),
        "pipelined_plugin_asyncio_calls_per_s": metric(
            rate["plugin_asyncio"], "calls/s", better="higher"
        ),
        "pipelined_calls_per_s": metric(rate[""], "calls/s", 30000, "higher"),
        "pipelined_uvloop_calls_per_s": metric(rate["uvloop"], "calls/s", better="higher"),
        "pipelined_async_handler_calls_per_s": metric(
            rate["async_handler"], "calls/s", better="higher"
        ),
        "pipelined_blocking_child_calls_per_s": metric(
            rate["blocking_child"], "calls/s", better="higher"
        ),
        "rpc_to_asyncio_echo_ratio": metric(rpc[""] / echo, "x", 0.8, "lower"),
        # No round trip beats the raw echo: the lowest rpc_to_asyncio_echo_ratio this run allows.
        "floor_to_asyncio_echo_ratio": metric(floor / echo, "x"),
        # The host session against the anchor's blocking far side: the lowest ratio any plugin
        # (whatever its loop) could give with this host session, in this run.
        "blocking_child_to_asyncio_echo_ratio": metric(rpc["blocking_child"] / echo, "x"),
        "rpc_to_floor_ratio": metric(rpc["uvloop"] / floor, "x", 3.0, "lower"),
        "pipelined_to_asyncio_echo_ratio": metric(rate[""] / echo_rate, "x", 2.5, "higher"),
    }
    print_table(
        "JSON-RPC over pipes vs a raw pipe echo and a minimal asyncio echo\n"
        "(rpc_*: host on asyncio, plugin on uvloop; *_uvloop_*: both on uvloop; "
        "*_plugin_asyncio_*: both on asyncio; *_async_handler_*: as rpc_* with a coroutine "
        "handler, a task per request; *_blocking_child_*: the host session against the "
        "anchor's blocking echo)",
        metrics,
    )
    print(f"written: {write_results('rpc', metrics)}")


if __name__ == "__main__":
    main()
