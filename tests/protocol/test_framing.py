"""Framing: NDJSON frames from arbitrary chunks, with in-band failures and a frame size limit."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdk.protocol import (
    ErrorResponse,
    FrameTooLarge,
    MessageDecoder,
    Notification,
    ParseError,
    ParseFailure,
    Request,
    SuccessResponse,
    WireError,
    encode_message,
)

MESSAGES = [
    Request(id=1, method="spec", params={"a": [1, 2, {"b": "ü"}]}),
    Notification(method="runtime.events", params={"events": [["x", 1, 0.5, {}]]}),
    SuccessResponse(id=1, result={"ok": True}),
    ErrorResponse(id="abc", error=WireError(code=-32601, message="nope")),
    Request(id="r-2", method="ping"),
]


def _plain(item: object) -> object:
    """A comparable form: raw params/results decoded to Python values."""
    if isinstance(item, ParseFailure):
        return ("failure", type(item.error).__name__, item.id)
    data: dict[str, object] = msgspec.json.decode(msgspec.json.encode(item))
    return data


def decode_all(chunks: list[bytes], max_frame_size: int = 1 << 20) -> list[object]:
    decoder = MessageDecoder(max_frame_size)
    out: list[object] = []
    for chunk in chunks:
        out.extend(_plain(item) for item in decoder.feed(chunk))
    return out


STREAM = b"".join(encode_message(m) for m in MESSAGES)
EXPECTED = decode_all([STREAM])


def test_a_stream_of_messages_decodes_to_the_messages_sent() -> None:
    assert len(EXPECTED) == len(MESSAGES)
    assert EXPECTED[0] == {
        "id": 1,
        "method": "spec",
        "params": {"a": [1, 2, {"b": "ü"}]},
        "jsonrpc": "2.0",
    }
    assert EXPECTED[4] == {"id": "r-2", "method": "ping", "jsonrpc": "2.0"}


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_split_of_a_valid_stream_decodes_to_the_same_messages(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert decode_all(chunks) == EXPECTED


def test_crlf_line_endings_and_blank_lines_are_tolerated() -> None:
    stream = b"\n\r\n   \n" + STREAM.replace(b"\n", b"\r\n") + b"\n\n"
    assert decode_all([stream]) == EXPECTED


@pytest.mark.parametrize(
    "line",
    [
        b"this is not json",
        b'{"jsonrpc": "2.0", "id": 1, "method": "a", "params": {"x": "\xff\xfe"}}',
        b"[1, 2, 3]",
        b'{"jsonrpc": "1.0", "id": 1, "method": "a"}',
        b'{"jsonrpc": "2.0"}',
        b'{"jsonrpc": "2.0", "id": null, "method": "a"}',
    ],
    ids=[
        "not-json",
        "invalid-utf8",
        "not-an-object",
        "wrong-version",
        "no-method-no-id",
        "null-id",
    ],
)
def test_a_bad_line_becomes_an_in_band_parse_error_and_decoding_goes_on(line: bytes) -> None:
    out = decode_all([line + b"\n" + STREAM])
    readable_id = (
        1 if line.startswith(b'{"jsonrpc": "2.0", "id": 1, "method": "a", "params"') else None
    )
    assert out[0] == ("failure", ParseError.__name__, readable_id)
    assert out[1:] == EXPECTED


def test_an_oversize_frame_is_reported_with_its_id_and_the_next_frame_still_decodes() -> None:
    big = encode_message(SuccessResponse(id=7, result="x" * 5000))
    out = decode_all([big[:100], big[100:3000], big[3000:], STREAM], max_frame_size=1000)
    assert out[0] == ("failure", FrameTooLarge.__name__, 7)
    assert out[1:] == EXPECTED


def test_an_oversize_frame_in_one_chunk_is_reported_once() -> None:
    big = encode_message(Request(id="big", method="x", params={"p": "y" * 5000}))
    out = decode_all([big + STREAM], max_frame_size=1000)
    assert out[0] == ("failure", FrameTooLarge.__name__, "big")
    assert out[1:] == EXPECTED


def test_the_decoder_holds_no_more_than_the_frame_limit_while_discarding() -> None:
    decoder = MessageDecoder(1000)
    for _ in range(50):
        assert decoder.feed(b"z" * 999) == []
        assert decoder.pending_bytes <= 1000


def test_a_nesting_bomb_is_refused_with_its_id_and_path_and_decoding_goes_on() -> None:
    bomb = b"[" * 10_000 + b"]" * 10_000
    frame = b'{"jsonrpc":"2.0","id":7,"result":{"snapshot":{"k":' + bomb + b"}}}\n"
    after = b'{"jsonrpc":"2.0","id":8,"result":{"ok":true}}\n'
    failure, message = MessageDecoder().feed(frame + after)
    assert isinstance(failure, ParseFailure)
    assert failure.id == 7
    assert "$.result.snapshot.k[0][0]" in failure.error.message
    assert "nested deeper than" in failure.error.message
    assert isinstance(message, SuccessResponse)
    assert message.id == 8
