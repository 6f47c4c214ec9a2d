"""Wire layer: the pipe message stream, the transport of host and plugin (the hot path).

Contract: `PipeMessageStream` decodes a read pipe inside the event loop's data callback and calls
the session's listener right there, so a reply resolves its caller without a reader task in
between (two loop iterations fewer per round trip than pulling); a read larger than `SLICE_BYTES`
is decoded a slice per loop turn, reading paused meanwhile, so a peer's flood never holds the loop
for one whole read. Writes go to the loop's pipe transport without a coroutine when they need not
wait (`try_send`, `send_nowait`, `hold_nowait`); otherwise through the coalescing `send` of
`_streams`. A sender that knows more frames are coming in this loop turn (other calls in flight)
holds its frame: what was held is written at the start of the next turn, at the end of the read
being delivered, or every `HOLD_FLUSH_FRAMES` frames (so the peer starts on them while this side
makes the rest), in order with every other frame; a lone frame is written at once, so a
sequential call costs no extra loop turn. `open_pipe_stream` builds one on the running loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import IO, cast

import anyio
import anyio.abc

from ._framing import Message, MessageDecoder, ParseFailure
from ._methods import DEFAULT_MAX_FRAME_SIZE
from ._streams import (
    DRAIN_ABOVE,
    MAX_BUFFERED_WRITE,
    AsyncioSendStream,
    CoalescingSender,
    Listener,
)

# What asyncio's pipe transport asks `os.read` for. Its default, 256 KiB, is above glibc's mmap
# threshold, so every read (one per reply on a sequential call) cost an mmap, an mremap and a
# munmap; a pipe holds 64 KiB by default, so a larger read never returned more anyway.
PIPE_READ_BYTES = 64 * 1024
SLICE_BYTES = 8 * 1024  # decoded per loop turn (~100 small frames, a few tenths of a millisecond)
# Frames held before they are written anyway. One write per turn costs one system call for a
# whole burst, but it makes the two processes take turns: the peer waits for the whole burst
# while this side prepares it, then this side waits for the whole answer. Writing every
# HOLD_FLUSH_FRAMES lets the peer start on the first frames while this side makes the rest.
HOLD_FLUSH_FRAMES = 16


class _PipeReader(asyncio.Protocol):
    """Decodes a read pipe in the loop's data callback and hands messages to the listener.

    A read above `SLICE_BYTES` (a flood, or one large frame) is cut at newlines into slices, one
    decoded per loop turn with reading paused meanwhile; a small read is decoded at once.
    """

    def __init__(self, max_frame_size: int) -> None:
        self.decoder = MessageDecoder(max_frame_size)
        self.listener: Listener | None = None
        self.early: list[Message | ParseFailure] = []  # what arrived before `listen`
        self.transport: asyncio.ReadTransport | None = None
        # Kept: `asyncio.get_running_loop()` costs a getpid() system call on Python 3.11.
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.backlog: deque[bytes] = deque()  # read, not yet decoded: for the next loop turns
        self.paused = False  # by the session (backpressure): the backlog waits too
        self._lost = False  # the pipe has ended; `closed` waits for the backlog
        self._scheduled = False
        self.delivering = False  # inside `_deliver`: replies written now are held to its end
        self.batch_end: Callable[[], None] | None = None  # writes what was held while delivering

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's pipe transports have the read interface without subclassing asyncio's.
        self.transport = cast(asyncio.ReadTransport, transport)
        if hasattr(transport, "max_size"):  # asyncio's own transport (uvloop reads its buffer)
            transport.max_size = PIPE_READ_BYTES

    def data_received(self, data: bytes) -> None:
        if self.backlog or len(data) > SLICE_BYTES:
            self.backlog.extend(_slices(data))
            self._set_reading(False)
            self._schedule()
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        messages = self.decoder.feed(data)
        listener = self.listener
        if listener is None:
            self.early.extend(messages)
            return
        # Replies the listener writes inline (sync handlers) go out in one write at the end.
        self.delivering = True
        try:
            for message in messages:
                listener(message)
        finally:
            self.delivering = False
            if self.batch_end is not None:
                self.batch_end()

    def _schedule(self) -> None:
        if not self._scheduled and not self.paused:
            self._scheduled = True
            self.loop.call_soon(self._work_off)

    def _work_off(self) -> None:
        """One slice of the backlog per loop turn; reading resumes once it is worked off."""
        self._scheduled = False
        if self.paused:
            return  # `resume` schedules the rest
        if self.backlog:
            self._deliver(self.backlog.popleft())
        if self.backlog:
            self._schedule()
        elif self._lost:
            self._end()
        else:
            self._set_reading(True)

    def pause(self) -> None:
        self.paused = True
        self._set_reading(False)

    def resume(self) -> None:
        self.paused = False
        if self.backlog:
            self._schedule()
        else:
            self._set_reading(True)

    def discard(self) -> None:
        """This side closes: what is still undecoded is dropped."""
        self.backlog.clear()
        if self._lost:
            self._end()

    def _set_reading(self, on: bool) -> None:
        transport = self.transport
        if self._lost or transport is None or transport.is_closing():
            return
        # asyncio's pipe transport ignores a redundant pause or resume (and so does uvloop's).
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if not self.backlog:
            self._end()
        else:
            self._schedule()  # the listener still gets what was read before the end

    def _end(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _slices(data: bytes) -> list[bytes]:
    """`data` cut after newlines into pieces of at most about `SLICE_BYTES` (a longer frame is cut
    anywhere: the decoder takes arbitrary chunks)."""
    if len(data) <= SLICE_BYTES:
        return [data]
    out: list[bytes] = []
    start = 0
    while len(data) - start > SLICE_BYTES:
        cut = data.rfind(b"\n", start, start + SLICE_BYTES)
        end = cut + 1 if cut >= 0 else start + SLICE_BYTES
        out.append(data[start:end])
        start = end
    if start < len(data):
        out.append(data[start:])
    return out


class PipeMessageStream(CoalescingSender):
    """NDJSON messages from a read pipe (decoded as they arrive) and to a byte send stream."""

    def __init__(self, reader: _PipeReader, send: anyio.abc.ByteSendStream) -> None:
        super().__init__(send)
        self._reader = reader
        # Holding needs a write that cannot wait (the loop's pipe transport); others never hold.
        self._writer = send if isinstance(send, AsyncioSendStream) else None
        self._held: list[bytes] = []  # frames of this loop turn, written at the next one
        self._held_size = 0
        self._flush_scheduled = False  # a `_write_held` is due at the start of the next turn
        reader.batch_end = self._write_held

    async def send(self, frame: bytes, *, hold: bool = False) -> None:
        if hold and self._writer is not None:
            self._hold(frame)
            if self._held_size <= DRAIN_ABOVE:
                return
            frame = b""  # past the high-water mark: write now and let the pipe push back
        if self._held:
            self._held.append(frame)
            frame = b"".join(self._held)
            self._held.clear()
            self._held_size = 0
        await super().send(frame)

    def hold_nowait(self, frame: bytes) -> bool:
        """Hold `frame` to be written with the other frames of this loop turn (at the start of
        the next one, or at the end of the read being delivered): `send(frame, hold=True)`
        without a coroutine. False, holding nothing, when it would pass the high-water mark:
        `send` then writes and lets the pipe push back."""
        if self._writer is None or self._held_size + len(frame) > DRAIN_ABOVE:
            return False
        self._hold(frame)
        return True

    def _hold(self, frame: bytes) -> None:
        """Hold `frame` for this turn's write (scheduled once; a read being delivered writes at
        its end); every HOLD_FLUSH_FRAMES frames, write what is held now."""
        if not self._flush_scheduled and not self._reader.delivering:
            self._flush_scheduled = True
            self._reader.loop.call_soon(self._write_held_next_turn)
        self._held.append(frame)
        self._held_size += len(frame)
        if len(self._held) >= HOLD_FLUSH_FRAMES and not self._flushing:
            self._write_held()

    def try_send(self, frame: bytes) -> bool:
        """Write `frame` at once if `send` would not wait (the pipe is below its high-water mark
        and no sender is waiting on it): True when written. The hot path of a call: no
        coroutine in between. A write that crosses the mark is still taken; the next `send`
        waits for the pipe, so backpressure holds one frame later."""
        writer = self._writer
        if writer is None or self._flushing or writer.buffered() > DRAIN_ABOVE:
            return False
        if self._held:
            self._held.append(frame)
            frame = b"".join(self._held)
            self._held.clear()
            self._held_size = 0
        try:
            return writer.write_nowait(frame)
        except (ConnectionError, RuntimeError):
            return False  # `send` reports the broken pipe

    def send_nowait(self, frame: bytes) -> bool:
        """Write `frame` now (after frames held this turn, to keep their order; while a read is
        being delivered, with the other frames written during it) unless the pipe is backed up
        past `MAX_BUFFERED_WRITE`; False when it was not written."""
        writer = self._writer
        if writer is None or writer.buffered() > MAX_BUFFERED_WRITE:
            return False
        if not self._held and not self._reader.delivering:
            return writer.write_nowait(frame)
        self._hold(frame)
        return True

    def _write_held_next_turn(self) -> None:
        self._flush_scheduled = False
        self._write_held()

    def _write_held(self) -> None:
        if not self._held or self._writer is None:
            return
        data = b"".join(self._held)
        self._held.clear()
        self._held_size = 0
        if self._flushing:  # a sender waits on a full pipe: queue behind what it writes next
            self._outgoing.append(data)
            self._outgoing_size += len(data)
        else:
            self._writer.write_nowait(data)

    @property
    def max_frame_size(self) -> int:
        return self._reader.decoder.max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int) -> None:
        self._reader.decoder.max_frame_size = value

    def skip_lines(self, skip: Callable[[bytes], bool] | None) -> None:
        """Lines `skip` takes are dropped undecoded (see `MessageDecoder.skip`)."""
        self._reader.decoder.skip = skip

    async def listen(self, listener: Listener) -> None:
        reader = self._reader
        early, reader.early = reader.early, []
        for message in early:
            listener(message)
        reader.listener = listener
        try:
            await asyncio.shield(reader.closed)
        finally:
            reader.listener = None

    def pause_reading(self) -> None:
        self._reader.pause()

    def resume_reading(self) -> None:
        self._reader.resume()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await super().aclose()
            self._reader.discard()
            if self._reader.transport is not None:
                self._reader.transport.close()


async def open_pipe_stream(
    read_pipe: IO[bytes],
    send: anyio.abc.ByteSendStream,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> PipeMessageStream:
    """A message stream reading `read_pipe` (a pipe's read end, opened unbuffered) on this loop."""
    loop = asyncio.get_running_loop()
    reader = _PipeReader(max_frame_size)
    await loop.connect_read_pipe(lambda: reader, read_pipe)
    return PipeMessageStream(reader, send)
