"""Wire layer: newline-delimited JSON frames and the JSON-RPC 2.0 message structs.

Contract: one UTF-8 JSON object per line (`\\n`, a trailing `\\r` tolerated, blank lines ignored).
`MessageDecoder.feed` takes arbitrary byte chunks and returns the messages completed so far; a line
that is not valid UTF-8, not JSON or not a JSON-RPC message becomes an in-band `ParseFailure`, and a
line longer than the maximum frame size is discarded up to its newline and reported as an in-band
`FrameTooLarge` failure; a line nested too deep for the decoder (a nesting bomb) becomes a
`ParseFailure` naming the JSON path where it goes too deep. The decoder never raises on bad input.
`params` and `result` stay raw (`msgspec.Raw`) until the session decodes them with the method's
typed decoder. A decoder's `skip`, when set, sees each line first: a line it takes (and counts)
is not decoded at all (how an over-budget notification flood is dropped cheaply).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from ._errors import FrameTooLarge, ParseError, PluginError, WireError
from ._methods import DEFAULT_MAX_FRAME_SIZE

RequestId = int | str
_NO_PARAMS = msgspec.Raw(b"")
_HEAD = 256  # bytes of an oversize frame kept to find its id
# Where a frame's nesting is refused: msgspec recurses once per level, and Python's default
# recursion limit (1000) stops it near there; the error names the path at this depth.
MAX_FRAME_DEPTH = 500
_ID_IN_HEAD = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


class Request(msgspec.Struct):
    id: RequestId
    method: str
    params: Any = msgspec.UNSET  # UNSET is never encoded: no params member at all
    jsonrpc: str = "2.0"


class Notification(msgspec.Struct):
    method: str
    params: Any = msgspec.UNSET
    jsonrpc: str = "2.0"


class SuccessResponse(msgspec.Struct):
    id: RequestId
    result: Any = None
    jsonrpc: str = "2.0"


class ErrorResponse(msgspec.Struct):
    id: RequestId | None
    error: WireError
    jsonrpc: str = "2.0"


class ParseFailure(msgspec.Struct):
    """An in-band value for a frame that could not be decoded. `error` says why.

    `id` is the request id read from the head of an oversize frame, when it could be read, so the
    session can fail that one call instead of letting it run into its deadline.
    """

    error: PluginError
    id: RequestId | None = None


Message = Request | Notification | SuccessResponse | ErrorResponse


class _Envelope(msgspec.Struct):
    """Every member a JSON-RPC message may carry; which are present decides its kind."""

    jsonrpc: str | msgspec.UnsetType = msgspec.UNSET
    id: RequestId | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    params: msgspec.Raw = _NO_PARAMS
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: WireError | msgspec.UnsetType = msgspec.UNSET


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_encoder = msgspec.json.Encoder()


def encode_message(message: Message) -> bytes:
    """One frame: the message's JSON and a newline."""
    return _encoder.encode(message) + b"\n"


def unencodable_path(value: Any) -> str:
    """The JSON path (`$.a[0]`) of the first string in `value` UTF-8 cannot encode (a lone
    surrogate: valid in a Python str and as a JSON escape, never in UTF-8), or `$`."""
    try:
        root = msgspec.to_builtins(value)
    except Exception:  # only a path for an error message: never fail while building one
        return "$"
    stack: list[tuple[Any, str]] = [(root, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path
        elif isinstance(item, dict):
            for key, entry in item.items():
                stack.append((entry, f"{path}.{key}" if _encodable(str(key)) else path))
                if not _encodable(str(key)):
                    return path
        elif isinstance(item, list):
            stack.extend((entry, f"{path}[{index}]") for index, entry in enumerate(item))
    return "$"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_frame(line: bytes) -> Message | ParseFailure:
    """Decode one line (without its newline) into a message, or an in-band failure."""
    try:
        # Raw params/results are not checked by the envelope decoder; ASCII (the common case)
        # is valid UTF-8, and `isascii` checks that without building a str.
        if not line.isascii():
            line.decode("utf-8")
        envelope = _envelope_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        # The id, when readable, lets the session fail that one call instead of timing it out.
        return ParseFailure(
            ParseError(f"not a JSON-RPC message: {exc}"), id=_id_from_head(line[:_HEAD])
        )
    except RecursionError:  # a nesting bomb: the decoder recurses per level; nothing is lost
        problem = f"nested deeper than {MAX_FRAME_DEPTH} levels at {deep_path(line)}"
        return ParseFailure(ParseError(f"frame refused: {problem}"), id=_id_from_head(line[:_HEAD]))
    return _classify(envelope)


def deep_path(text: bytes, limit: int = MAX_FRAME_DEPTH) -> str:
    """The JSON path (`$.result.a[0]`, shortened) where `text` first nests deeper than `limit`
    containers; `$` when it does not. A byte scan, no recursion: only for error messages."""
    frames: list[list[Any]] = []  # [key or index, expecting a key] per open container
    at, size = 0, len(text)
    while at < size:
        char = text[at]
        if char == 0x22:  # a string: skip it, and take it as the key when one is expected
            end = at + 1
            while end < size and text[end] != 0x22:
                end += 2 if text[end] == 0x5C else 1
            if frames and frames[-1][1]:
                frames[-1][0], frames[-1][1] = text[at + 1 : end].decode("utf-8", "replace"), False
            at = end
        elif char in b"{[":
            if len(frames) >= limit:
                return _render(frames)
            frames.append(["", True] if char == 0x7B else [0, False])
        elif char in b"}]" and frames:
            frames.pop()
        elif char == 0x2C and frames:  # a comma: the next index, or the next key
            if isinstance(frames[-1][0], int):
                frames[-1][0] += 1
            else:
                frames[-1][1] = True
        at += 1
    return "$"


def _render(frames: list[list[Any]], shown: int = 12) -> str:
    parts = [f"[{key}]" if isinstance(key, int) else f".{key}" for key, _ in frames[:shown]]
    return "$" + "".join(parts) + ("..." if len(frames) > shown else "")


def _classify(envelope: _Envelope) -> Message | ParseFailure:
    if envelope.jsonrpc != "2.0":
        return ParseFailure(ParseError('missing or wrong "jsonrpc" member (want "2.0")'))
    request_id = envelope.id
    if isinstance(envelope.method, str):
        params = envelope.params if envelope.params else msgspec.UNSET
        if request_id is msgspec.UNSET:
            return Notification(method=envelope.method, params=params)
        if request_id is None:
            return ParseFailure(ParseError("a request id must be a number or a string"))
        return Request(id=request_id, method=envelope.method, params=params)
    if request_id is msgspec.UNSET:
        return ParseFailure(ParseError("a message needs a method or an id"))
    if isinstance(envelope.error, WireError):
        return ErrorResponse(id=request_id, error=envelope.error)
    if request_id is None or envelope.result is msgspec.UNSET:
        return ParseFailure(ParseError("a response needs an id and a result or an error"))
    return SuccessResponse(id=request_id, result=envelope.result)


class MessageDecoder:
    """Incremental NDJSON decoder with a maximum frame size. Never raises on bad input."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._discarding = False  # inside an oversize frame, dropping bytes up to its newline
        self._head = b""  # the first bytes of the oversize frame being discarded
        # Asked about each complete line before it is decoded: True means the owner has dealt
        # with it (dropped and counted it) and it yields no message.
        self.skip: Callable[[bytes], bool] | None = None

    def feed(self, chunk: bytes) -> list[Message | ParseFailure]:
        """Add bytes; return every message (or failure) completed by them, in order."""
        if not self._buffer and not self._discarding and chunk.endswith(b"\n"):
            fast = self._whole_lines(chunk)
            if fast is not None:
                return fast
        out: list[Message | ParseFailure] = []
        buffer = self._buffer
        buffer += chunk
        # A large frame arrives in many chunks: one without a newline completes nothing, so the
        # buffer is not searched again (that would be quadratic in the frame's size).
        if b"\n" in chunk:
            self._take_lines(buffer, out)
        if len(buffer) > self.max_frame_size:
            if not self._discarding:
                self._head = bytes(buffer[:_HEAD])
            buffer.clear()
            self._discarding = True
        return out

    def _take_lines(self, buffer: bytearray, out: list[Message | ParseFailure]) -> None:
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
                out.append(self._too_large(self._head))
            else:
                self._take_line(buffer, start, end, out)
            start = end + 1
        del buffer[:start]

    def _whole_lines(self, chunk: bytes) -> list[Message | ParseFailure] | None:
        """Fast path: a chunk of complete, small, LF-only lines (the common case on a pipe)."""
        if len(chunk) > self.max_frame_size or b"\r" in chunk:
            return None
        lines = chunk.split(b"\n")[:-1]
        skip = self.skip
        if skip is None:
            return [decode_frame(line) for line in lines if line and not line.isspace()]
        return [
            decode_frame(line) for line in lines if line and not line.isspace() and not skip(line)
        ]

    def _take_line(
        self, buffer: bytearray, start: int, end: int, out: list[Message | ParseFailure]
    ) -> None:
        stop = end - 1 if end > start and buffer[end - 1] == 0x0D else end
        if stop - start > self.max_frame_size:
            out.append(self._too_large(bytes(buffer[start : start + _HEAD])))
        elif stop > start and not buffer[start:stop].isspace():
            line = bytes(buffer[start:stop])
            if self.skip is None or not self.skip(line):
                out.append(decode_frame(line))

    def _too_large(self, head: bytes) -> ParseFailure:
        error = FrameTooLarge(f"frame larger than the maximum of {self.max_frame_size} bytes")
        return ParseFailure(error, id=_id_from_head(head))

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame held in the buffer."""
        return len(self._buffer)


def _id_from_head(head: bytes) -> RequestId | None:
    """The `id` member of a truncated frame, if it appears in the first bytes."""
    match = _ID_IN_HEAD.search(head)
    if match is None:
        return None
    try:
        value = msgspec.json.decode(match.group(1))
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, int | str) else None
