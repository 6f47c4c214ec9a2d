"""Child process of bench/rpc.py: a raw echo of lines, a blocking msgspec echo, or `echo` served
by an `RpcSession` on the plugin's loop (`PLUGBOX_LOOP` picks asyncio or uvloop, as in a plugin):
an inline plain function, or a coroutine in a task per request with `BENCH_HANDLER=async`."""

from __future__ import annotations

import os
import sys

import msgspec

from sdk._loop import run
from sdk._stdio import WireFds, claim_stdio, open_wire
from sdk.protocol import RpcSession


class _Call(msgspec.Struct):
    id: int
    method: str
    params: msgspec.Raw
    jsonrpc: str = "2.0"


class _Reply(msgspec.Struct):
    id: int
    result: msgspec.Raw
    jsonrpc: str = "2.0"


def raw_echo() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        stdout.write(line)
        stdout.flush()


def msgspec_echo() -> None:
    """The far side of the minimal asyncio echo: blocking, decodes and answers each line."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    decode, encode = msgspec.json.Decoder(_Call).decode, msgspec.json.Encoder().encode
    for line in stdin:
        call = decode(line)
        stdout.write(encode(_Reply(id=call.id, result=call.params)) + b"\n")
        stdout.flush()


async def serve(wire: WireFds) -> None:
    session = RpcSession(await open_wire(wire), name="bench")

    def echo(params: object) -> object:
        return params

    async def echo_async(params: object) -> object:
        return params

    if os.environ.get("BENCH_HANDLER") == "async":  # a task per request, as a coroutine needs
        session.on_request("echo", echo_async)
    else:  # answered in the loop's data callback, as a quick plain function is
        session.on_request_inline("echo", echo)
    await session.run()


if __name__ == "__main__":
    if sys.argv[1] == "raw":
        raw_echo()
    elif sys.argv[1] == "msgspec":
        msgspec_echo()
    else:
        run(serve, claim_stdio())
