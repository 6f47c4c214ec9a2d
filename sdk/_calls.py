"""Server layer: calling an author's function, and shaping what it returns or raises for the wire.

Contract: `call_author(function, *args)` awaits a coroutine function on the loop and runs any
other function in a worker thread (`_threads`), awaiting an awaitable it returns.
`strict_json(value, what)` refuses NaN, infinities and non-JSON values with `InvalidResult`
instead of letting the encoder bend them. A handler failing with one of `DETERMINISTIC_ERRORS`
fails the same way on every attempt: `deterministic_error` marks it so the host never retries.
`validation_issues` turns a pydantic `ValidationError` into the wire's issues.
"""

from __future__ import annotations

import inspect
import json
import traceback
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, cast

from pydantic import ValidationError

from ._threads import run_in_thread
from .protocol import InternalError, RemoteError, ValidationIssue

_strict_encoder = json.JSONEncoder(allow_nan=False)
_is_coroutine_function: dict[Callable[..., Any], bool] = {}  # inspect's check costs per call


async def call_author(function: Callable[..., Any], *args: Any) -> Any:
    """Await a coroutine function on the loop; run anything else in a worker thread."""
    is_coroutine = _is_coroutine_function.get(function)
    if is_coroutine is None:
        is_coroutine = _is_coroutine_function[function] = inspect.iscoroutinefunction(function)
    if is_coroutine:
        return await function(*args)
    # In a worker thread; one that outlives its cancelled call ends the process (_threads).
    result = await run_in_thread(function, *args)
    return await result if inspect.isawaitable(result) else result


def strict_json(value: dict[str, Any], what: str) -> dict[str, Any]:
    """Refuse NaN, infinities and non-JSON values instead of letting the encoder bend them."""
    global _strict_iterencode
    try:
        _strict_iterencode(value, 0)
    except (TypeError, ValueError) as exc:
        _strict_iterencode = _strict_check()  # a refusal may leave circular-reference marks
        raise InvalidResult(f"the {what} is not strict JSON: {exc}") from None
    return value


def _strict_check() -> Callable[[Any, int], Any]:
    """`_strict_encoder`'s C encoder, made once rather than per call as `encode` does (half of a
    small result's check). The stdlib's own encoder when the C accelerator is missing."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return lambda value, _level: _strict_encoder.encode(value)
    return cast(
        Callable[[Any, int], Any],
        c_make_encoder(
            {},  # circular-reference marks: emptied again by every check that passes
            _strict_encoder.default,
            encode_basestring_ascii,
            None,  # no indent
            _strict_encoder.key_separator,
            _strict_encoder.item_separator,
            False,  # sort_keys
            False,  # skipkeys: a key JSON cannot carry is refused
            False,  # allow_nan
        ),
    )


_strict_iterencode = _strict_check()


class InvalidResult(InternalError):
    """A plugin's snapshot or result cannot cross the wire as JSON."""


# A handler raising one of these fails the same way on every attempt: the host must not retry.
DETERMINISTIC_ERRORS = (AttributeError, TypeError, ValidationError)


def deterministic_error(exc: BaseException) -> RemoteError:
    """The wire error for a deterministic handler failure: `data.deterministic` is true."""
    data = {"type": type(exc).__name__, "deterministic": True, "traceback": traceback_text(exc)}
    return RemoteError(f"{type(exc).__name__}: {exc}", data=data)


def validation_issues(exc: ValidationError) -> list[ValidationIssue]:
    return [
        ValidationIssue(loc=list(error["loc"]), msg=error["msg"], type=error["type"])
        for error in exc.errors(include_url=False, include_input=False)
    ]


def traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
