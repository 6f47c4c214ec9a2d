"""Wire layer: a bidirectional JSON-RPC 2.0 peer over a `MessageStream`.

Contract: both sides may send requests and notifications at any time; responses are matched by id,
so any number of requests are in flight in both directions (serving them is the incoming half:
`_inbound`, `_replies`, `_routes`). A request has an optional deadline; on timeout or when the
caller is cancelled, `$/cancel` is sent and the far side cancels the handler and sends no reply.
When the stream closes, what arrived before the end is still handled in order, then every pending
request fails with `ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.abc
import msgspec

from ._deadlines import Deadlines
from ._errors import (
    ConnectionClosed,
    FrameTooLarge,
    InvalidParams,
    ParseError,
    PluginError,
    PluginTimeout,
)
from ._framing import (
    Notification,
    Request,
    RequestId,
    deep_path,
    encode_message,
    unencodable_path,
)
from ._inbound import END, Inbound, Pending
from ._methods import DEFAULT_MAX_FRAME_SIZE, CancelParams, Method
from ._replies import GONE
from ._routes import Redactor, typed_decoder
from ._streams import MessageStream

T = TypeVar("T")
CANCEL_SEND_S = 1.0  # how long a `cancel` notification may wait for room in the peer's pipe


class RpcSession(Inbound):
    """A JSON-RPC peer. `name` names the other side in every error this session raises."""

    def __init__(
        self,
        stream: MessageStream,
        *,
        name: str = "peer",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        redact: Redactor | None = None,
    ) -> None:
        super().__init__(stream, name=name, max_frame_size=max_frame_size, redact=redact)
        self._next_id = 0
        self._closed: PluginError | None = None
        self._closed_event = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._deadlines = Deadlines()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> RpcSession:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        # The body's own exception is not handed to the group, so it propagates unwrapped.
        await self._task_group.__aexit__(None, None, None)

    async def run(self) -> None:
        """Dispatch incoming messages until the stream ends; then fail what is pending."""
        runner = self._running_loop().create_task(self._run_ordered())
        try:
            await self._stream.listen(self._dispatch)
            self._enqueue(END)  # what arrived before the end is still handled, in order
            await runner
        finally:
            runner.cancel()
            self._close(ConnectionClosed("connection closed", plugin=self.name))
            for task in self._handlers:
                task.cancel()  # the peer is gone: nobody reads the replies
            with anyio.CancelScope(shield=True):
                await asyncio.gather(runner, *self._handlers, return_exceptions=True)

    def notify_nowait(self, method: str, params: Any) -> bool:
        """Write a notification now, without waiting, if the stream can (a pipe on this loop with
        room): True when written; False when not (closed, unencodable, too large, no room)."""
        send_nowait = self._send_nowait
        if self._closed is not None or send_nowait is None:
            return False
        try:
            frame = self._encoded(Notification(method=method, params=params), method)
        except PluginError:
            return False
        return len(frame) <= self.max_frame_size and bool(send_nowait(frame))

    def limit_frames(self, size: int) -> None:
        """Apply the frame size negotiated in `initialize` to what this side sends and reads."""
        self.max_frame_size = size
        if hasattr(self._stream, "max_frame_size"):  # pipe and memory streams decode with it
            self._stream.max_frame_size = size

    async def aclose(self) -> None:
        """Close the stream; pending requests fail with `ConnectionClosed`."""
        self._close(ConnectionClosed("connection closed by this side", plugin=self.name))
        await self._stream.aclose()

    async def wait_closed(self) -> None:
        """Return once the session has closed (stream ended or `aclose`)."""
        await self._closed_event.wait()

    def _close(self, error: PluginError) -> None:
        if self._closed is None:
            self._closed = error
            self._closed_event.set()
        pending, self._pending = self._pending, {}
        self._deadlines.close()
        for waiter in pending.values():
            waiter.error = ConnectionClosed(error.message, plugin=self.name)
            waiter.set()

    # -- outgoing -------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Any = msgspec.UNSET,
        *,
        result_type: type[T] | Any = Any,
        timeout: float | None = None,
    ) -> T:
        """Send a request and wait for its result, decoded as `result_type`.

        Raises `PluginTimeout` after `timeout` seconds, the remote error's class for an error
        response, `FrameTooLarge` for an oversize request, `ConnectionClosed` when the stream ends.
        """
        if self._closed is not None:
            raise ConnectionClosed(self._closed.message, plugin=self.name, method=method)
        self._next_id += 1
        request_id = self._next_id
        frame = self._encoded(Request(id=request_id, method=method, params=params), method)
        if len(frame) > self.max_frame_size:
            raise FrameTooLarge(
                f"request of {len(frame)} bytes exceeds {self.max_frame_size}",
                plugin=self.name,
                method=method,
            )
        # Other calls in flight: more frames follow in this loop turn, so write them together.
        hold = bool(self._pending)
        waiter = self._pending[request_id] = Pending(self._running_loop())
        self._resume_reading()  # its answer arrives on the pipe that backpressure may have paused
        try:
            try:
                if not self._written_nowait(frame, hold):
                    await self._stream.send(frame, hold=hold)
            except GONE:
                raise ConnectionClosed(
                    "the peer's input is closed", plugin=self.name, method=method
                ) from None
            await self._wait(waiter, request_id, method, timeout)
        except anyio.get_cancelled_exc_class():
            if self._pending.pop(request_id, None) is not None:
                await self._send_cancel(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)
        result: T = self._result(waiter, method, result_type)
        return result

    async def _wait(
        self, waiter: Pending, request_id: int, method: str, timeout: float | None
    ) -> None:
        if timeout is None:
            await waiter.wait()
            return
        # A deadline on the session's one timer, not a cancel scope (a scope costs more than the
        # rest of the call) nor a loop timer per request (`_deadlines`).
        self._deadlines.add(
            self._running_loop(), timeout, request_id, waiter, waiting=len(self._pending)
        )
        await waiter.wait()
        if waiter.expired:
            self._pending.pop(request_id, None)
            await self._send_cancel(request_id)
            raise PluginTimeout(
                f"no answer within {timeout:g} s (the call was cancelled)",
                plugin=self.name,
                method=method,
            )

    def _result(self, waiter: Pending, method: str, result_type: Any) -> Any:
        if waiter.error is not None:
            error = waiter.error
            error.plugin = error.plugin or self.name
            error.method = error.method or method
            raise error
        raw = waiter.result if waiter.result else b"null"
        try:
            return typed_decoder(result_type).decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ParseError(
                f"result does not match the expected shape: {exc}", plugin=self.name, method=method
            ) from None
        except RecursionError:  # deep enough to pass the envelope, too deep for this stack
            raise ParseError(
                f"result refused: nested too deep at {deep_path(bytes(raw), 64)}",
                plugin=self.name,
                method=method,
            ) from None

    def _encoded(self, message: Request | Notification, method: str) -> bytes:
        """The frame, or `InvalidParams` naming the path of a string UTF-8 cannot carry: this
        call fails, never the session, its other calls or the host."""
        try:
            return encode_message(message)
        except UnicodeEncodeError:
            path = unencodable_path(message.params)
            raise InvalidParams(
                f"params cannot be sent: {path} is not valid Unicode text (a lone surrogate)",
                plugin=self.name,
                method=method,
            ) from None

    async def notify(self, method: str, params: Any = msgspec.UNSET) -> None:
        """Send a notification (no answer). Raises `ConnectionClosed` once the stream ended,
        `InvalidParams` when the params cannot be encoded."""
        if self._closed is not None:
            raise ConnectionClosed(self._closed.message, plugin=self.name, method=method)
        try:
            await self._stream.send(
                self._encoded(Notification(method=method, params=params), method)
            )
        except GONE:
            raise ConnectionClosed(
                "the peer's input is closed", plugin=self.name, method=method
            ) from None

    async def _send_cancel(self, request_id: RequestId) -> None:
        # Shielded, so a cancelled caller still tells the peer; bounded, because a peer that
        # stopped reading leaves the pipe full and the write would wait forever (it held a host's
        # shutdown ladder before SIGTERM: the `shutdown` request timed out into this cancel).
        # A peer that is gone has nothing left to cancel.
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(CANCEL_SEND_S),
            contextlib.suppress(PluginError, *GONE),
        ):
            await self.notify(Method.CANCEL, CancelParams(id=request_id))
