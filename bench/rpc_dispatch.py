"""Measurement behind docs/decisions.md: jsonrpcserver's dispatch cost against our own dispatch.

Both dispatch the same small `echo` request already decoded by msgspec (validation off for
jsonrpcserver, as the decision asks); the figure that matters is the dispatch cost as a share of
a small round trip through the session (bench/results/rpc.json, measured in the same checkout).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import msgspec

sys.path[:] = [str(Path(__file__).resolve().parent.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]

from jsonrpcserver import Success, dispatch_to_response

from bench._common import RESULTS, metric, print_table, write_results
from sdk.protocol import Request, SuccessResponse, encode_message, typed_decoder

REQUEST = encode_message(Request(id=1, method="echo", params={"text": "hello", "n": 42})).strip()
COUNT = 20000


def echo(**params: object) -> Success:
    return Success(params)


def ours_us() -> float:
    decoder = typed_decoder(dict)
    started = time.perf_counter()
    for _ in range(COUNT):
        message = msgspec.json.decode(REQUEST, type=Request)
        params = decoder.decode(
            message.params if isinstance(message.params, msgspec.Raw) else b"{}"
        )
        encode_message(SuccessResponse(id=message.id, result=params))
    return (time.perf_counter() - started) / COUNT * 1e6


def jsonrpcserver_us() -> float:
    text = REQUEST.decode()
    started = time.perf_counter()
    for _ in range(COUNT):
        response = dispatch_to_response(
            text,
            {"echo": echo},
            deserializer=lambda raw: msgspec.json.decode(raw),
            validator=lambda request: request,
        )
        encode_message(SuccessResponse(id=1, result=response._value.result))  # type: ignore[union-attr]
    return (time.perf_counter() - started) / COUNT * 1e6


def main() -> None:
    ours, theirs = ours_us(), jsonrpcserver_us()
    rpc = json.loads((RESULTS / "rpc.json").read_text())["metrics"]["rpc_rtt_median_us"]["value"]
    metrics = {
        "own_dispatch_us": metric(ours, "us"),
        "jsonrpcserver_dispatch_us": metric(theirs, "us"),
        "jsonrpcserver_extra_share_of_rtt": metric((theirs - ours) / rpc, "x", 0.10, "lower"),
    }
    print_table(f"Dispatch cost against a {rpc:.0f} us round trip", metrics)
    share = (theirs - ours) / rpc
    verdict = "under" if share < 0.10 else "over"
    print(f"jsonrpcserver adds {share:.1%} to a round trip: {verdict} the 10% bar to adopt it")
    print(f"written: {write_results('rpc_dispatch', metrics)}")


if __name__ == "__main__":
    main()
