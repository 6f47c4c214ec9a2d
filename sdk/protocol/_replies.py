"""Wire layer: serving the peer's requests — handler tasks, inline answers and replies.

Contract: `RequestServer._start` serves one request that may start now. A route registered with
`inline=True` is a plain function called right there (no task, no loop turn: for quick handlers
that never block), its reply written without a coroutine, with the other replies of the same read
in one write; an inline request whose params do not decode, or a stream that cannot write without
waiting, takes the task path instead. Every other request runs in its own task, registered before
it runs so that a `$/cancel` right behind it finds it (`_inbound` cancels it; no reply is sent).
Handler exceptions become error responses (the one `except Exception` of the wire, with
`_inbound`'s listener boundary); unknown methods and undecodable params are answered with their
JSON-RPC codes, a result that cannot be encoded or is over the frame size with an internal error.
A reply to a peer that is gone is dropped: the peer fails its own calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Unpack

import anyio
import msgspec

from ._errors import FrameTooLarge, InternalError, InvalidParams, MethodNotFound, error_to_wire
from ._framing import (
    ErrorResponse,
    Request,
    RequestId,
    SuccessResponse,
    encode_message,
    unencodable_path,
)
from ._routes import Handler, Route, Routes, SessionOptions
from ._streams import MessageStream

GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class RequestServer(Routes):
    """Runs the handlers of the peer's requests and writes their replies."""

    def __init__(self, stream: MessageStream, **options: Unpack[SessionOptions]) -> None:
        super().__init__(stream, **options)
        self._inbound: dict[RequestId, asyncio.Task[Any]] = {}  # request id -> its handler's task
        self._handlers: dict[asyncio.Task[None], RequestId] = {}  # task -> its request id
        self._loop: asyncio.AbstractEventLoop | None = None
        # A pipe's write without a coroutine in between, when it need not wait (see `try_send`).
        self._try_send: Callable[[bytes], bool] | None = getattr(stream, "try_send", None)
        self._hold_nowait: Callable[[bytes], bool] | None = getattr(stream, "hold_nowait", None)
        self._send_nowait: Callable[[bytes], bool] | None = getattr(stream, "send_nowait", None)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Cached: `asyncio.get_running_loop()` costs a getpid() system call on Python 3.11.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _written_nowait(self, frame: bytes, hold: bool) -> bool:
        """`frame` written or held without a coroutine, as `send(frame, hold=hold)` would when it
        need not wait (the hot path of every call); False when `send` must do it."""
        nowait = self._hold_nowait if hold else self._try_send
        return nowait is not None and nowait(frame)

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

    def _answer_inline(self, request: Request, route: Route) -> bool:
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
