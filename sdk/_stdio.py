"""Server layer: claim stdio for the wire before any plugin code runs, and open the wire streams.

Contract: after `claim_stdio()`, fd 1 is a copy of stderr (so `print()`, C extensions and
grandchildren write to the log, never to the wire), fd 0 reads /dev/null, and the wire uses private
non-inheritable duplicates of the original stdin and stdout. `open_wire` turns those two fds into
the protocol's message stream on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    AsyncioSendStream,
    PipeMessageStream,
    open_pipe_stream,
)


@dataclass(frozen=True)
class WireFds:
    read_fd: int
    write_fd: int


def claim_stdio() -> WireFds:
    """Move the wire off fds 0/1: private dups for the wire, fd 1 -> stderr, fd 0 -> /dev/null."""
    wire = WireFds(read_fd=os.dup(0), write_fd=os.dup(1))  # os.dup: non-inheritable
    sys.stdout.flush()
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    return wire


async def open_wire(
    fds: WireFds, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> PipeMessageStream:
    """The wire's message stream over the wire fds, driven by the running asyncio loop."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fds.write_fd, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return await open_pipe_stream(
        os.fdopen(fds.read_fd, "rb", 0), AsyncioSendStream(writer), max_frame_size=max_frame_size
    )
