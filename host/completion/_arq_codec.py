"""Completion layer: how ARQ jobs and results sit in Redis — JSON with a schema, never pickle.

Contract: `encode_job` / `decode_job` are ARQ's `job_serializer` / `job_deserializer` for the
enqueuer and the worker. ARQ's default is pickle: anything able to write to Redis (a plugin that
reached it, say) would run code in the worker, which holds the host's secrets. Here a record is
JSON decoded by msgspec into `ArqRecord` — plain values only, every field typed, unknown fields
refused — so bytes in Redis can at worst name our one job with an integer run id. A record that
does not fit (a pickle, say) is a `DeserializationError`: ARQ marks that job failed, and nothing
of it runs.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ArqRecord(msgspec.Struct, forbid_unknown_fields=True):
    """ARQ's job dict (`t`, `f`, `a`, `k`, `et`) plus its result fields (`s`, `r`, ...)."""

    t: int | None  # job try
    f: str  # function name: only `run_integrations_job` is registered
    a: tuple[int, ...]  # positional args: our one job takes the run id
    k: dict[str, int]  # keyword args: none are used
    et: int  # enqueue time, ms
    s: bool | None = None  # result: success
    r: Any = None  # result: our job's JSON summary, or an error's text
    st: int | None = None
    ft: int | None = None
    q: str | None = None
    id: str | None = None


_DECODER = msgspec.json.Decoder(ArqRecord)


def _describe(value: Any) -> Any:
    # A failed job's result is the exception; store its text, never the object.
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise TypeError(f"cannot store {type(value).__name__} in an ARQ record")


_ENCODER = msgspec.json.Encoder(enc_hook=_describe)


def encode_job(data: dict[str, Any]) -> bytes:
    return _ENCODER.encode(data)


def decode_job(raw: bytes) -> dict[str, Any]:
    """The record as the dict ARQ expects; `msgspec` errors (caught by ARQ) for anything else."""
    return msgspec.structs.asdict(_DECODER.decode(raw))
