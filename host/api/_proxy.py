"""HTTP layer: plugin routes, mounted under `/api/v1/integrations/<package>/...` and proxied.

Contract: one generic ASGI app serves every plugin (no per-plugin code in the host). A request is
checked against `ApiLimits` (413 for a large body, 431 for too many or too large headers), sent to
the plugin as `http.request` with only allow-listed headers (`_headers.py`), and the plugin's
status, filtered headers and body are returned (502 for an invalid status or a body above
`max_response_bytes`). Plugin
failures map to 502/503/504 with a JSON body naming the plugin. It is a plain ASGI app, not a
FastAPI route: the proxy is a hot path and needs no request parsing of its own. `target` maps a
path to (plugin, path inside it); `_reference_routes.ReferenceRoutes` overrides only that.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

from sdk.protocol import HttpResponseResult, Method, PluginError

from .._registry import Registry
from ._errors import error_body, status_for
from ._headers import request_headers, response_headers, valid_status
from ._state import ApiState

PREFIX = "/api/v1/integrations"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Incoming(NamedTuple):
    """A request as read and held to the limits here; the plugin's client makes it wire params."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class PluginRoutes:
    """The ASGI app mounted at `PREFIX`: `/<package>/<path>` goes to that plugin."""

    def __init__(self, state: ApiState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        package = ""
        try:
            registry = await self.state.ready()
            package, path = self.target(registry, _route_path(scope))
            info = registry.get_package(package)
            if info is None or not info.spec.capabilities.routes:
                raise Refused(404, f"plugin {package!r} has no HTTP routes")
            request = await self._request(scope, receive, path)
            granted = self.state.plugins.grants.for_plugin(package).request_headers
            result = await self.state.plugins.client(package).http(
                request.method,
                request.path,
                query_string=request.query_string,
                headers=request_headers(request.headers, granted),
                body=request.body,
                timeout=self.state.limits.route_timeout_s,
            )
            if not valid_status(result.status):
                raise Refused(502, f"plugin answered with invalid status {result.status}")
            if len(result.body) > self.state.limits.max_response_bytes:
                limit = self.state.limits.max_response_bytes
                raise Refused(502, f"plugin answer exceeds {limit} bytes")
        except Refused as refused:
            await _json(send, refused.status, {"detail": refused.detail, "plugin": package})
            return
        except PluginError as error:
            body = error_body(error, plugin=package, method=Method.HTTP_REQUEST)
            await _json(send, status_for(error), body)
            return
        await _respond(send, result)

    def target(self, registry: Registry, path: str) -> tuple[str, str]:
        """(plugin, path inside its mount point) for a path below this app's mount point."""
        package, _, rest = path.lstrip("/").partition("/")
        return package, "/" + rest

    async def _request(self, scope: Scope, receive: Receive, path: str) -> _Incoming:
        limits = self.state.limits
        raw: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if len(raw) > limits.max_header_count:
            raise Refused(431, f"more than {limits.max_header_count} headers")
        if sum(len(k) + len(v) for k, v in raw) > limits.max_header_bytes:
            raise Refused(431, f"headers exceed {limits.max_header_bytes} bytes")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        declared = next((v for k, v in headers if k.lower() == "content-length"), "")
        if declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise Refused(413, f"request body exceeds {limits.max_body_bytes} bytes")
        return _Incoming(
            method=scope["method"],
            path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=await _body(receive, limits.max_body_bytes),
        )


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets `root_path`)."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


async def _body(receive: Receive, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes `limit` (a missing length cannot bypass it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, result: HttpResponseResult) -> None:
    headers = response_headers(result.headers)
    headers.append((b"content-length", str(len(result.body)).encode()))
    await send({"type": "http.response.start", "status": result.status, "headers": headers})
    await send({"type": "http.response.body", "body": result.body})


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
