"""Wire layer: the route table of a JSON-RPC peer's incoming half, and its typed decoders.

Contract: `Routes` maps each method this side serves to its handler and the cached msgspec decoder
of its params (`typed_decoder`: one per type, per process). A request route may instead be an
inline plain function (`on_request_inline`), answered in the loop's data callback by
`_replies.RequestServer`. A notification route may have an `admit` gate (a rate budget), asked
once the line is decoded, and a `refuse` gate, asked before a line that is plainly that
notification (the canonical encoding's prefix, no `"id"` member) is decoded at all: when it
refuses (and counts), the stream's decoder skips the line, a fraction of a decode's cost, so a
flood past a budget costs ~1 us a line. Both count what they drop in `notifications_dropped`.
Absent params decode as an empty object. This module only registers: serving is `_replies`'s,
dispatch and arrival order `_inbound`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec

from ._methods import DEFAULT_MAX_FRAME_SIZE
from ._streams import MessageStream

Handler = Callable[[Any], Awaitable[Any]]
InlineHandler = Callable[[Any], Any]
Redactor = Callable[[str], str]


class SessionOptions(TypedDict, total=False):
    """The keyword options of a session, as `Routes` takes them: the classes between `Routes`
    and `RpcSession` pass them on unchanged (`**options: Unpack[SessionOptions]`)."""

    name: str
    max_frame_size: int
    redact: Redactor | None


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def typed_decoder(target: Any) -> msgspec.json.Decoder[Any]:
    """The cached msgspec decoder for a type (built once per type, per process)."""
    decoder = _decoders.get(target)
    if decoder is None:
        decoder = _decoders[target] = msgspec.json.Decoder(target)
    return decoder


def decode_params(decoder: msgspec.json.Decoder[Any], params: Any) -> Any:
    """Decode raw params; absent params decode as an empty object."""
    return decoder.decode(params if isinstance(params, msgspec.Raw) and params else b"{}")


@dataclass(frozen=True)
class Route:
    handler: Handler
    decoder: msgspec.json.Decoder[Any]
    admit: Callable[[], bool] | None = None  # a notification's gate: False drops it undecoded
    inline: InlineHandler | None = None  # a request's plain function, run without a task

    def decode(self, params: Any) -> Any:
        return decode_params(self.decoder, params)


def _prefix(method: str) -> bytes:
    """How a notification of `method` starts in the canonical encoding (`encode_message`)."""
    return b'{"method":' + msgspec.json.encode(method) + b","


class Routes:
    """What this side serves: request and notification routes, and the undecoded-line gate."""

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
        self.notifications_dropped = 0  # refused by their route's `admit` or `refuse` gate
        self._stream = stream
        self._redact = redact
        self._requests: dict[str, Route] = {}
        self._notifications: dict[str, Route] = {}
        # (line prefix, refuse) of the notifications a decoder may drop undecoded
        self._skippable: list[tuple[bytes, Callable[[], bool]]] = []

    def on_request(
        self, method: str, handler: Handler, *, params_type: Any = dict[str, Any]
    ) -> None:
        """Serve `method`: `handler(params)` returns the result (any msgspec-encodable value)."""
        self._requests[method] = Route(handler, typed_decoder(params_type))

    def on_request_inline(
        self, method: str, function: InlineHandler, *, params_type: Any = dict[str, Any]
    ) -> None:
        """Serve `method` with a plain function called as the request arrives, in the loop's
        data callback: no task and no loop turn per request. Only for quick functions that
        never block (they hold the loop while they run) and need no cancellation."""

        async def handler(params: Any) -> Any:  # the path behind queued notifications
            return function(params)

        self._requests[method] = Route(handler, typed_decoder(params_type), inline=function)

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
        self._notifications[method] = Route(handler, typed_decoder(params_type), admit)
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
