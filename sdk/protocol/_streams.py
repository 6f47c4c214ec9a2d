"""Wire layer: the message stream contract, its pulled and in-memory streams, pipe byte streams.

Contract: a `MessageStream` sends already-encoded frames and hands every decoded message (or
in-band `ParseFailure`) to one synchronous listener, in order, until the peer closes; the listener
may pause and resume reading for backpressure. Concurrent senders are coalesced into one write per
burst (`CoalescingSender`), so pipelined calls cost one system call for many frames; past
`MAX_BUFFERED_WRITE` queued, senders wait for the pipe. `ByteMessageStream` adapts any pair of
anyio byte streams by pulling; `memory_message_pair()` joins two of them through in-memory byte
pipes that go through the same framing as a real pipe (for tests). `AsyncioSendStream` and
`AsyncioReceiveStream` are anyio byte streams over a loop's pipe; the send side can also write
without a coroutine, which `_pipe`'s `PipeMessageStream` (the host's and plugin's transport) uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Protocol

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._framing import Message, MessageDecoder, ParseFailure
from ._methods import DEFAULT_MAX_FRAME_SIZE

READ_CHUNK = 256 * 1024  # large reads: one system call drains many pipelined frames
MAX_BUFFERED_WRITE = 8 * 1024 * 1024  # past this, senders wait for the pipe (backpressure)
DRAIN_ABOVE = 64 * 1024  # asyncio's own default high-water mark

Listener = Callable[[Message | ParseFailure], None]


class MessageStream(Protocol):
    """What a session needs from a transport."""

    async def send(self, frame: bytes, *, hold: bool = False) -> None:
        """Write `frame`; `hold` lets the stream write it with the next frames of this turn."""
        ...

    async def listen(self, listener: Listener) -> None:
        """Call `listener` with each message in order; return when the peer has closed."""
        ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    async def aclose(self) -> None: ...


class CoalescingSender:
    """Frames from concurrent senders, written as one burst by whichever sender came first."""

    def __init__(self, send: anyio.abc.ByteSendStream) -> None:
        self._send = send
        self._outgoing: list[bytes] = []
        self._outgoing_size = 0
        self._flushing = False
        self._drained: anyio.Event | None = None  # made only when a sender must wait

    async def send(self, frame: bytes, *, hold: bool = False) -> None:
        """Queue a frame; the first sender of a burst writes everything queued meanwhile."""
        if self._flushing:
            self._outgoing.append(frame)
            self._outgoing_size += len(frame)
            if self._outgoing_size > MAX_BUFFERED_WRITE:
                if self._drained is None:
                    self._drained = anyio.Event()
                await self._drained.wait()
            return
        self._flushing = True
        try:
            data = frame
            while data:
                await self._send.send(data)
                data = b"".join(self._outgoing)
                self._outgoing.clear()
                self._outgoing_size = 0
        finally:
            self._flushing = False
            self._outgoing.clear()
            if self._drained is not None:
                self._drained.set()
                self._drained = None

    async def aclose(self) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self._send.aclose()


class ByteMessageStream(CoalescingSender):
    """NDJSON messages over an anyio byte receive stream and byte send stream (pulled)."""

    def __init__(
        self,
        receive: anyio.abc.ByteReceiveStream,
        send: anyio.abc.ByteSendStream,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(send)
        self._receive = receive
        self._decoder = MessageDecoder(max_frame_size)
        self._ready: deque[Message | ParseFailure] = deque()
        self._eof = False
        self._resumed: anyio.Event | None = None  # set while reading is paused

    @property
    def max_frame_size(self) -> int:
        return self._decoder.max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int) -> None:
        self._decoder.max_frame_size = value

    def skip_lines(self, skip: Callable[[bytes], bool] | None) -> None:
        """Lines `skip` takes are dropped undecoded (see `MessageDecoder.skip`)."""
        self._decoder.skip = skip

    async def receive(self) -> Message | ParseFailure:
        """The next message; raises `anyio.EndOfStream` once the peer has closed."""
        while not self._ready:
            if self._eof:
                raise anyio.EndOfStream
            try:
                chunk = await self._receive.receive(READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._eof = True
                continue
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.popleft()

    async def listen(self, listener: Listener) -> None:
        while True:
            if self._resumed is not None:
                await self._resumed.wait()
            try:
                message = await self.receive()
            except anyio.EndOfStream:
                return
            listener(message)

    def pause_reading(self) -> None:
        if self._resumed is None:
            self._resumed = anyio.Event()

    def resume_reading(self) -> None:
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await super().aclose()
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await self._receive.aclose()


class AsyncioReceiveStream(anyio.abc.ByteReceiveStream):
    """An anyio byte stream over an asyncio `StreamReader` (a pipe of the running loop)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self._reader.read(max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def aclose(self) -> None:
        self._reader.feed_eof()


class AsyncioSendStream(anyio.abc.ByteSendStream):
    """An anyio byte stream over an asyncio `StreamWriter`; a broken pipe is BrokenResourceError."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def buffered(self) -> int:
        """Bytes handed to the transport and not yet taken by the pipe."""
        return self._writer.transport.get_write_buffer_size()

    def write_nowait(self, item: bytes) -> bool:
        """Hand bytes to the transport (a closed pipe is reported by the next `send`); False
        when it is closing and took nothing."""
        transport = self._writer.transport
        if transport.is_closing():
            return False
        transport.write(item)
        return True

    async def send(self, item: bytes) -> None:
        try:
            self._writer.write(item)
            # drain() only waits when the transport is above its high-water mark; skipping the
            # call below it saves a coroutine per frame on the hot path.
            if self._writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
                await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._writer.close()


class _MemoryByteReceive(anyio.abc.ByteReceiveStream):
    def __init__(self, source: MemoryObjectReceiveStream[bytes]) -> None:
        self._source = source

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._source.receive()

    async def aclose(self) -> None:
        await self._source.aclose()


class _MemoryByteSend(anyio.abc.ByteSendStream):
    def __init__(self, sink: MemoryObjectSendStream[bytes]) -> None:
        self._sink = sink

    async def send(self, item: bytes) -> None:
        await self._sink.send(item)

    async def aclose(self) -> None:
        await self._sink.aclose()


def memory_message_pair(
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> tuple[ByteMessageStream, ByteMessageStream]:
    """Two connected message streams (A's sends arrive at B and back), for tests."""
    a_to_b_send, a_to_b_receive = anyio.create_memory_object_stream[bytes](1024)
    b_to_a_send, b_to_a_receive = anyio.create_memory_object_stream[bytes](1024)
    a = ByteMessageStream(
        _MemoryByteReceive(b_to_a_receive),
        _MemoryByteSend(a_to_b_send),
        max_frame_size=max_frame_size,
    )
    b = ByteMessageStream(
        _MemoryByteReceive(a_to_b_receive),
        _MemoryByteSend(b_to_a_send),
        max_frame_size=max_frame_size,
    )
    return a, b
