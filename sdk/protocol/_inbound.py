"""Wire layer: the incoming half of a JSON-RPC 2.0 peer — dispatch and arrival order.

Contract: the stream's listener is `_dispatch`, which never raises. Responses resolve their caller
at once (a handler waiting on the other side never deadlocks the reader). A request starts at once
(`_replies`: in its own task, or answered inline) unless notifications are queued ahead of it,
which it then waits behind. Notifications run one at a time in arrival order; past
`ORDERED_HIGH_WATER` queued, the stream stops reading so the peer's writes wait on the pipe
(unless an answer to one of our requests is due on it). The ordered runner yields to the loop
after `ORDERED_BATCH` messages or `ORDERED_SLICE_S` of work, so a peer's flood never holds the
loop (the call's loop) for long. A notification its route's `admit` gate refuses is dropped and
counted (`notifications_dropped`) before its params are decoded or it is queued; unknown
notifications are dropped there too (the `refuse` gate, before decoding, is `_routes`'s).
`$/cancel` cancels a running handler (or drops a queued request) and no reply is sent. A bad frame
carrying the id of one of our requests fails that request; any other is answered with JSON-RPC's
id-less error. `Pending` is one of our requests waiting for its answer (`_session` sends them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Unpack

import msgspec

from ._errors import PluginError, error_from_wire
from ._framing import (
    ErrorResponse,
    Message,
    Notification,
    ParseFailure,
    Request,
    RequestId,
    SuccessResponse,
)
from ._methods import CancelParams, Method
from ._replies import RequestServer
from ._routes import SessionOptions, decode_params, typed_decoder
from ._streams import MessageStream

logger = logging.getLogger("plugbox.protocol")
END = None  # queued after the last message: the stream has ended
ORDERED_HIGH_WATER = 64  # queued notifications before the stream stops reading (backpressure)
ORDERED_BATCH = 64  # ordered messages handled per loop turn before yielding (issue #14: floods)
ORDERED_SLICE_S = 0.0005  # ... or this much work, whichever comes first


class Pending:
    """One outgoing request waiting for its response (a bare future: this is the hot path)."""

    __slots__ = ("error", "expired", "future", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self.result: msgspec.Raw | None = None
        self.error: PluginError | None = None
        self.expired = False  # the deadline passed before an answer came

    def set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def expire(self) -> None:
        if not self.future.done():
            self.expired = True
            self.future.set_result(None)

    async def wait(self) -> None:
        await self.future


class Inbound(RequestServer):
    """Serves what the peer sends; `RpcSession` adds the outgoing half and the lifecycle."""

    def __init__(self, stream: MessageStream, **options: Unpack[SessionOptions]) -> None:
        super().__init__(stream, **options)
        self.parse_failures = 0
        self._pending: dict[RequestId, Pending] = {}  # our requests awaiting the peer's answer
        # Notifications (and requests behind them) keep arrival order: one runner handles them.
        self._ordered: deque[Message | ParseFailure | None] = deque()
        self._ordered_busy = False
        self._ordered_wakeup: asyncio.Future[None] | None = None
        self._paused = False

    def _dispatch(self, message: Message | ParseFailure) -> None:
        """The stream's listener (often called from the loop's data callback): never raises.

        Responses resolve their caller at once; a request starts its own task at once unless
        notifications are ahead of it, which it then waits behind, as arrival order requires.
        """
        try:
            # The common kinds first, by exact type (what `decode_frame` makes): a missed
            # isinstance against a msgspec Struct goes through its metaclass (~0.1 us, a union
            # ~0.4 us), which cost every request ~0.6 us here. Kinds are exclusive, so the order
            # of the checks changes no outcome; other types fall through to isinstance.
            if type(message) is Request and not self._ordered and not self._ordered_busy:
                self._start(message)
            elif type(message) is SuccessResponse or type(message) is ErrorResponse:
                self._resolve(message)
            elif isinstance(message, Notification):
                if message.method == Method.CANCEL:
                    self._cancel_inbound(message.params)  # at once, even behind a slow handler
                elif self._admitted(message):
                    self._enqueue(message)
            elif isinstance(message, SuccessResponse | ErrorResponse):
                self._resolve(message)
            elif isinstance(message, Request) and not self._ordered and not self._ordered_busy:
                self._start(message)
            elif isinstance(message, ParseFailure) and self._fail_pending(message):
                return
            else:
                self._enqueue(message)
        except Exception:  # the listener boundary: a bug here must not close the transport
            logger.exception("%s: dispatching a message failed", self.name)

    def _admitted(self, message: Notification) -> bool:
        route = self._notifications.get(message.method)
        if route is None:
            return False  # unknown notifications are ignored, as JSON-RPC requires
        if route.admit is None or route.admit():
            return True
        self.notifications_dropped += 1
        return False

    def _enqueue(self, message: Message | ParseFailure | None) -> None:
        self._ordered.append(message)
        # Past the high-water mark the peer's writes wait on the pipe, unless we await an
        # answer on that same pipe (a notification handler calling its peer): never deadlock.
        if len(self._ordered) >= ORDERED_HIGH_WATER and not self._paused and not self._pending:
            self._paused = True
            self._stream.pause_reading()
        wakeup = self._ordered_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run_ordered(self) -> None:
        """Handle notifications, parse failures and the requests behind them in arrival order."""
        loop = self._running_loop()
        handled, since = 0, time.perf_counter()
        while True:
            if not self._ordered:
                self._ordered_wakeup = loop.create_future()
                await self._ordered_wakeup
                handled, since = 0, time.perf_counter()
                continue
            if handled >= ORDERED_BATCH or time.perf_counter() - since >= ORDERED_SLICE_S:
                # A handler that never suspends would otherwise run the whole queue in one turn.
                await asyncio.sleep(0)
                handled, since = 0, time.perf_counter()
            handled += 1
            self._ordered_busy = True
            message = self._ordered.popleft()
            try:
                if message is None:
                    return  # the stream ended after everything before it was handled
                # Notifications first: what this queue mostly holds, and an exact type passes
                # isinstance at once, while a miss against a Struct costs ~0.1 us (`_dispatch`).
                if isinstance(message, Notification):
                    await self._notified(message)
                elif isinstance(message, Request):
                    self._start(message)
                elif isinstance(message, ParseFailure):
                    await self._parse_failed(message)
            finally:
                self._ordered_busy = False
            if len(self._ordered) <= ORDERED_HIGH_WATER // 2:
                self._resume_reading()

    def _resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._stream.resume_reading()

    def _resolve(self, message: SuccessResponse | ErrorResponse) -> None:
        waiter = self._pending.pop(message.id, None) if message.id is not None else None
        if waiter is None:
            return  # a late answer to a request that timed out or was cancelled
        if isinstance(message, ErrorResponse):
            waiter.error = error_from_wire(message.error, plugin=self.name)
        else:
            waiter.result = message.result
        waiter.set()

    def _fail_pending(self, failure: ParseFailure) -> bool:
        """A bad frame that carries the id of a pending request fails that request."""
        waiter = self._pending.pop(failure.id, None) if failure.id is not None else None
        if waiter is None:
            return False
        self._count_bad_frame(failure)
        failure.error.plugin = self.name
        waiter.error = failure.error
        waiter.set()
        return True

    async def _parse_failed(self, failure: ParseFailure) -> None:
        """A bad frame that answers nothing of ours: tell the peer (JSON-RPC's id-less error)."""
        self._count_bad_frame(failure)
        await self._reply_error(None, failure.error)

    def _count_bad_frame(self, failure: ParseFailure) -> None:
        self.parse_failures += 1
        logger.warning("%s sent a bad frame: %s", self.name, failure.error.message)

    async def _notified(self, message: Notification) -> None:
        route = self._notifications.get(message.method)
        if route is None:
            return  # unknown notifications are ignored, as JSON-RPC requires
        try:
            await route.handler(route.decode(message.params))
        except Exception:  # the dispatcher boundary: one bad notification never stops the reader
            logger.exception("%s: notification %r failed", self.name, message.method)

    def _cancel_inbound(self, params: Any) -> None:
        try:
            request_id = decode_params(typed_decoder(CancelParams), params).id
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        task = self._inbound.get(request_id)
        if task is not None:
            task.cancel()  # each request runs in its own task: cancelling it cancels the handler
            return
        queued = [m for m in self._ordered if isinstance(m, Request) and m.id == request_id]
        for request in queued:
            self._ordered.remove(request)  # never started: dropped, and no reply is due
