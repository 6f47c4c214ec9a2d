"""Child process of bench/rpc.py: either a raw echo of lines, or an RpcSession serving `echo`."""

from __future__ import annotations

import sys

import anyio

from sdk._stdio import WireFds, claim_stdio, open_wire
from sdk.protocol import RpcSession


def raw_echo() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        stdout.write(line)
        stdout.flush()


async def serve(wire: WireFds) -> None:
    session = RpcSession(await open_wire(wire), name="bench")

    async def echo(params: object) -> object:
        return params

    session.on_request("echo", echo)
    await session.run()


if __name__ == "__main__":
    if sys.argv[1] == "raw":
        raw_echo()
    else:
        anyio.run(serve, claim_stdio(), backend="asyncio")
