"""HTTP layer: the JSON body guard in front of the workflow endpoints.

Contract: a request to `/api/v1/workflows/...` is read at most `ApiLimits.max_definition_bytes`
(a larger declared or actual body is 413 before any parsing), then its JSON is checked once: not
JSON, nested deeper than `MAX_DEPTH`, or holding a lone surrogate (`"\\udcff"` is valid JSON but no
UTF-8 string, so no plugin could be sent it) is 400 with the JSON path of the first offence, e.g.
`{"detail": [{"loc": ["body", "nodes", 0, "data", "name"], "msg": "...", "type":
"invalid_unicode"}]}`. A body that passes is replayed to the route unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdk.protocol import MAX_DEPTH

GUARDED = "/api/v1/workflows"


class BodyProblem(Exception):
    def __init__(self, status: int, loc: list[str | int], msg: str, kind: str) -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg, self.kind = status, loc, msg, kind


class JsonBodyGuard:
    """ASGI middleware: size, depth and encodability of workflow request bodies."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(GUARDED):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            if body:
                check_json(body)
        except BodyProblem as problem:
            detail = [{"loc": problem.loc, "msg": problem.msg, "type": problem.kind}]
            await _answer(send, problem.status, {"detail": detail})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # a disconnect, if the route waits for one
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        too_big = BodyProblem(413, ["body"], f"body exceeds {self.max_bytes} bytes", "too_large")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                raise too_big
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def check_json(body: bytes) -> None:
    """Raise `BodyProblem` (400) for a body that is not plain, encodable, bounded JSON."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BodyProblem(
            400, ["body"], f"JSON nested deeper than {MAX_DEPTH} levels", "too_deep"
        ) from None
    except ValueError as exc:
        raise BodyProblem(400, ["body"], f"not JSON: {exc}", "json_invalid") from None
    path = first_offence(value)
    if path is not None:
        loc, msg, kind = path
        raise BodyProblem(400, ["body", *loc], msg, kind)


def first_offence(value: Any) -> tuple[list[str | int], str, str] | None:
    """The path of the first lone surrogate or over-deep container in `value` (iterative)."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return loc[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels", "too_deep"
        if isinstance(item, str):
            if not _encodable(item):
                return loc, "a lone surrogate: not valid Unicode text", "invalid_unicode"
        elif isinstance(item, dict):
            for key, entry in item.items():
                if not _encodable(key):
                    return [*loc, key], "a lone surrogate in a key", "invalid_unicode"
                stack.append((entry, [*loc, key]))
        elif isinstance(item, list):
            stack.extend((entry, [*loc, index]) for index, entry in enumerate(item))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    # The path may hold a surrogate key: escape it so the answer itself encodes.
    payload = json.dumps(body, ensure_ascii=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
