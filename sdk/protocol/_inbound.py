"""Wire layer: the incoming half of a JSON-RPC 2.0 peer — routing, arrival order, handler tasks.

Contract: the stream's listener is `_dispatch`, which never raises. Responses resolve their caller
at once (a handler waiting on the other side never deadlocks the reader). Each request runs in its
own task, started at once unless notifications are queued ahead of it; a route registered with
`inline=True` is a plain function called right there instead (no task, no loop turn: for quick
handlers that never block), its reply written with the other replies of the same read in one
write. Notifications run one at a
time in arrival order; past `ORDERED_HIGH_WATER` queued, the stream stops reading so the peer's
writes wait on the pipe (unless an answer to one of our requests is due on it). The ordered runner
yields to the loop after `ORDERED_BATCH` messages or `ORDERED_SLICE_S` of work, so a peer's flood
never holds the loop (the call's loop) for long. A notification route may have an `admit` gate (a
rate budget): a notification it refuses is dropped and counted (`notifications_dropped`) before its
params are decoded or it is queued; unknown notifications are dropped there too. A route may also
have a `refuse` gate, asked before a line that is plainly that notification (the canonical
encoding's prefix, no `"id"` member) is decoded at all: when it refuses (and counts), the stream's
decoder skips the line, a fraction of a decode's cost, so a flood past a budget costs ~1 us a line.
`$/cancel` cancels a running handler (or drops a queued request) and no reply is sent. Handler
exceptions become error responses (the one `except Exception` of the wire); unknown methods and
undecodable params are answered with their JSON-RPC codes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from ._errors import (
    FrameTooLarge,
    InternalError,
    InvalidParams,
    MethodNotFound,
    PluginError,
    error_from_wire,
    error_to_wire,
)
from ._framing import (
    ErrorResponse,
    Message,
    Notification,
    ParseFailure,
    Request,
    RequestId,
    SuccessResponse,
    encode_message,
    unencodable_path,
)
from ._methods import DEFAULT_MAX_FRAME_SIZE, CancelParams, Method
from ._streams import MessageStream

Handler = Callable[[Any], Awaitable[Any]]
InlineHandler = Callable[[Any], Any]
Redactor = Callable[[str], str]

logger = logging.getLogger("plugbox.protocol")
GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
END = None  # queued after the last message: the stream has ended
ORDERED_HIGH_WATER = 64  # queued notifications before the stream stops reading (backpressure)
ORDERED_BATCH = 64  # ordered messages handled per loop turn before yielding (issue #14: floods)
ORDERED_SLICE_S = 0.0005  # ... or this much work, whichever comes first
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def typed_decoder(target: Any) -> msgspec.json.Decoder[Any]:
    """The cached msgspec decoder for a type (built once per type, per process)."""
    decoder = _decoders.get(target)
    if decoder is None:
        decoder = _decoders[target] = msgspec.json.Decoder(target)
    return decoder


@dataclass(frozen=True)
class _Route:
    handler: Handler
    decoder: msgspec.json.Decoder[Any]
    admit: Callable[[], bool] | None = None  # a notification's gate: False drops it undecoded
    inline: InlineHandler | None = None  # a request's plain function, run without a task

    def decode(self, params: Any) -> Any:
        return decode_params(self.decoder, params)


def _prefix(method: str) -> bytes:
    """How a notification of `method` starts in the canonical encoding (`encode_message`)."""
    return b'{"method":' + msgspec.json.encode(method) + b","


def decode_params(decoder: msgspec.json.Decoder[Any], params: Any) -> Any:
    """Decode raw params; absent params decode as an empty object."""
    return decoder.decode(params if isinstance(params, msgspec.Raw) and params else b"{}")


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


class Inbound:
    """Serves what the peer sends; `RpcSession` adds the outgoing half and the lifecycle."""

    def __init__(
        self,
        stream: MessageStream,
        *,
        name: str = "peer",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        redact: Redactor | None = None,
    ) -> None:
        self.name = name
        self.max_frame_size = max_frame_size
        self.parse_failures = 0
        self.notifications_dropped = 0  # refused by their route's `admit` gate, never decoded
        self._stream = stream
        self._redact = redact
        self._requests: dict[str, _Route] = {}
        self._notifications: dict[str, _Route] = {}
        self._pending: dict[RequestId, Pending] = {}  # our requests awaiting the peer's answer
        self._inbound: dict[RequestId, asyncio.Task[Any]] = {}  # request id -> its handler's task
        self._handlers: dict[asyncio.Task[None], RequestId] = {}  # task -> its request id
        # Notifications (and requests behind them) keep arrival order: one runner handles them.
        self._ordered: deque[Message | ParseFailure | None] = deque()
        self._ordered_busy = False
        self._ordered_wakeup: asyncio.Future[None] | None = None
        self._paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # A pipe's write without a coroutine in between, when it need not wait (see `try_send`).
        self._try_send: Callable[[bytes], bool] | None = getattr(stream, "try_send", None)
        self._hold_nowait: Callable[[bytes], bool] | None = getattr(stream, "hold_nowait", None)
        self._send_nowait: Callable[[bytes], bool] | None = getattr(stream, "send_nowait", None)
        # (line prefix, refuse) of the notifications a decoder may drop undecoded
        self._skippable: list[tuple[bytes, Callable[[], bool]]] = []

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Cached: `asyncio.get_running_loop()` costs a getpid() system call on Python 3.11.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def on_request(
        self, method: str, handler: Handler, *, params_type: Any = dict[str, Any]
    ) -> None:
        """Serve `method`: `handler(params)` returns the result (any msgspec-encodable value)."""
        self._requests[method] = _Route(handler, typed_decoder(params_type))

    def on_request_inline(
        self, method: str, function: InlineHandler, *, params_type: Any = dict[str, Any]
    ) -> None:
        """Serve `method` with a plain function called as the request arrives, in the loop's
        data callback: no task and no loop turn per request. Only for quick functions that
        never block (they hold the loop while they run) and need no cancellation."""

        async def handler(params: Any) -> Any:  # the path behind queued notifications
            return function(params)

        self._requests[method] = _Route(handler, typed_decoder(params_type), inline=function)

    def on_notification(
        self,
        method: str,
        handler: Handler,
        *,
        params_type: Any = dict[str, Any],
        admit: Callable[[], bool] | None = None,
        refuse: Callable[[], bool] | None = None,
    ) -> None:
        """Handle notification `method`; handlers run in arrival order, so keep them quick.

        `admit()`, when given, is asked as each one arrives: False drops it at once, before its
        params are decoded or it waits in the queue (a rate budget costs a flood almost nothing).
        `refuse()`, when given, is asked first, before such a line is even decoded: True drops it
        (`refuse` counts it as `admit` would have); False decodes it and asks `admit` as usual.
        """
        self._notifications[method] = _Route(handler, typed_decoder(params_type), admit)
        prefix = _prefix(method)
        self._skippable = [entry for entry in self._skippable if entry[0] != prefix]
        if refuse is not None:
            self._skippable.append((prefix, refuse))
        skip_lines = getattr(self._stream, "skip_lines", None)
        if skip_lines is not None:  # pipe and memory streams decode, so they can skip
            skip_lines(self._skip_line if self._skippable else None)

    def _skip_line(self, line: bytes) -> bool:
        """The decoder's `skip`: drop an undecoded line that is plainly a notification whose
        gate refuses it. Anything less plain (another member order, an `"id"` member that
        would make it a request) is decoded and judged as usual."""
        for prefix, refuse in self._skippable:
            if line.startswith(prefix) and b'"id"' not in line and refuse():
                self.notifications_dropped += 1
                return True
        return False

    def set_redactor(self, redact: Redactor | None) -> None:
        """Text filter applied to error messages and tracebacks this side sends."""
        self._redact = redact

    def _dispatch(self, message: Message | ParseFailure) -> None:
        """The stream's listener (often called from the loop's data callback): never raises.

        Responses resolve their caller at once; a request starts its own task at once unless
        notifications are ahead of it, which it then waits behind, as arrival order requires.
        """
        try:
            if isinstance(message, SuccessResponse | ErrorResponse):
                self._resolve(message)
            elif isinstance(message, Notification) and message.method == Method.CANCEL:
                self._cancel_inbound(message.params)  # at once, even behind a slow handler
            elif isinstance(message, Notification) and not self._admitted(message):
                return
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
                if isinstance(message, Request):
                    self._start(message)
                elif isinstance(message, Notification):
                    await self._notified(message)
                elif isinstance(message, ParseFailure):
                    await self._parse_failed(message)
            finally:
                self._ordered_busy = False
            if len(self._ordered) <= ORDERED_HIGH_WATER // 2:
                self._resume_reading()

    def _written_nowait(self, frame: bytes, hold: bool) -> bool:
        """`frame` written or held without a coroutine, as `send(frame, hold=hold)` would when it
        need not wait (the hot path of every call); False when `send` must do it."""
        nowait = self._hold_nowait if hold else self._try_send
        return nowait is not None and nowait(frame)

    def _resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._stream.resume_reading()

    def _start(self, request: Request) -> None:
        route = self._requests.get(request.method)
        if route is not None and route.inline is not None and self._answer_inline(request, route):
            return
        self._track(request.id, self._serve(request))

    def _track(self, request_id: RequestId, work: Coroutine[Any, Any, None]) -> None:
        # A native task per request: anyio's start_soon costs ~19 us here, create_task ~2.4 us,
        # and this is the hot path. Cancellation still uses anyio scopes. Registered before it
        # runs, so a `$/cancel` right behind the request finds it.
        task = self._running_loop().create_task(work)
        self._inbound[request_id] = task
        self._handlers[task] = request_id
        task.add_done_callback(self._finished)

    def _answer_inline(self, request: Request, route: _Route) -> bool:
        """Run an inline route's function now and write its reply without waiting. False, before
        the function ran, leaves the request to the task path (a stream that cannot write
        without waiting, params that do not decode); an error, or a reply that cannot be
        written at once, is answered by a task."""
        send_nowait = self._send_nowait
        function = route.inline
        if send_nowait is None or function is None:
            return False
        try:
            params = route.decode(request.params)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return False
        try:
            result = function(params)
        except Exception as exc:  # the dispatcher boundary: a handler error is a reply
            self._track(request.id, self._reply_error(request.id, exc))
            return True
        try:
            frame = encode_message(SuccessResponse(id=request.id, result=result))
        except (TypeError, msgspec.EncodeError, UnicodeEncodeError):
            frame = b""  # `_reply` answers with the error that explains it
        if not frame or len(frame) > self.max_frame_size or not send_nowait(frame):
            self._track(request.id, self._reply(request.id, result))
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        request_id = self._handlers.pop(task, None)
        if request_id is not None and self._inbound.get(request_id) is task:
            del self._inbound[request_id]

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

    async def _serve(self, request: Request) -> None:
        route = self._requests.get(request.method)
        if route is None:
            unknown = MethodNotFound(f"unknown method {request.method!r}", method=request.method)
            await self._reply_error(request.id, unknown)
            return
        try:
            params = route.decode(request.params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            invalid = InvalidParams(f"invalid params: {exc}", method=request.method)
            await self._reply_error(request.id, invalid)
            return
        await self._run_handler(request, route.handler, params)

    async def _run_handler(self, request: Request, handler: Handler, params: Any) -> None:
        # A `$/cancel` cancels this task: CancelledError passes through, no reply is sent.
        try:
            result = await handler(params)
        except Exception as exc:  # the dispatcher boundary: a handler error is a reply
            await self._reply_error(request.id, exc)
            return
        await self._reply(request.id, result)

    async def _reply(self, request_id: RequestId, result: Any) -> None:
        try:
            frame = encode_message(SuccessResponse(id=request_id, result=result))
        except (TypeError, msgspec.EncodeError) as exc:
            await self._reply_error(request_id, InternalError(f"result is not JSON: {exc}"))
            return
        except UnicodeEncodeError:  # a lone surrogate: answer now, never leave the caller waiting
            path = unencodable_path(result)
            text = f"result is not valid Unicode text at {path} (a lone surrogate)"
            await self._reply_error(request_id, InternalError(text))
            return
        if len(frame) > self.max_frame_size:
            error = FrameTooLarge(f"result of {len(frame)} bytes exceeds {self.max_frame_size}")
            await self._reply_error(request_id, error)
            return
        # Other handlers running: their replies follow in this loop turn, written together.
        await self._send_quietly(frame, hold=len(self._handlers) > 1)

    async def _reply_error(self, request_id: RequestId | None, error: BaseException) -> None:
        wire = error_to_wire(error, redact=self._redact)
        await self._send_quietly(encode_message(ErrorResponse(id=request_id, error=wire)))

    async def _send_quietly(self, frame: bytes, *, hold: bool = False) -> None:
        if self._written_nowait(frame, hold):
            return
        # Not contextlib.suppress: a context manager per reply costs on the hot path.
        try:  # noqa: SIM105
            await self._stream.send(frame, hold=hold)
        except GONE:
            pass  # a peer that is gone fails its calls on its side
