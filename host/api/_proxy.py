"""HTTP layer: plugin routes, mounted under `/api/v1/integrations/<package>/...` and proxied.

Contract: one generic catch-all route serves every plugin (no per-plugin code in the host). A
request is checked against `ApiLimits` (413 for a large body, 431 for too many or too large
headers), sent to the plugin as `http.request`, and the plugin's status, headers and body are
returned. Plugin failures map to 502/503/504 with a JSON body naming the plugin.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sdk.protocol import HttpRequestParams, HttpResponseResult, Method, PluginError

from ._errors import plugin_error_response
from ._state import ApiLimits, ApiStateDep

PREFIX = "/api/v1/integrations"
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Framing headers describe the hop, not the payload: the host recomputes them.
_HOP_BY_HOP = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})

router = APIRouter(prefix=PREFIX, tags=["integrations"])


class _TooLarge(Exception):
    """The request body passed `ApiLimits.max_body_bytes`."""


@router.api_route("/{package}/{path:path}", methods=_ALL_METHODS, include_in_schema=False)
async def proxy_plugin_route(
    package: str, path: str, request: Request, state: ApiStateDep
) -> Response:
    """Forward one request to the plugin that owns `package`."""
    registry = await state.ready()
    info = registry.get_package(package)
    if info is None or not info.spec.capabilities.routes:
        return _json_error(404, f"plugin {package!r} has no HTTP routes", package)
    refusal = _check_headers(request, state.limits, package)
    if refusal is not None:
        return refusal
    try:
        body = await _read_body(request, state.limits.max_body_bytes)
    except _TooLarge:
        limit = state.limits.max_body_bytes
        return _json_error(413, f"request body exceeds {limit} bytes", package)
    params = HttpRequestParams(
        method=request.method,
        path="/" + path,
        query_string=request.url.query,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        body=body,
    )
    try:
        result: HttpResponseResult = await state.plugins.get(package).call(
            Method.HTTP_REQUEST,
            params,
            result_type=HttpResponseResult,
            timeout=state.limits.route_timeout_s,
        )
    except PluginError as error:
        return plugin_error_response(
            error, plugin=package, method=Method.HTTP_REQUEST, scrubber=state.scrubber
        )
    return _to_response(result)


def _check_headers(request: Request, limits: ApiLimits, package: str) -> Response | None:
    raw = request.headers.raw
    if len(raw) > limits.max_header_count:
        return _json_error(431, f"more than {limits.max_header_count} headers", package)
    if sum(len(key) + len(value) for key, value in raw) > limits.max_header_bytes:
        return _json_error(431, f"headers exceed {limits.max_header_bytes} bytes", package)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        return _json_error(413, f"request body exceeds {limits.max_body_bytes} bytes", package)
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes `limit` (a missing length cannot bypass it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _to_response(result: HttpResponseResult) -> Response:
    response = Response(content=result.body, status_code=result.status)
    kept = [
        (key.lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in result.headers
        if key.lower().encode("latin-1") not in _HOP_BY_HOP
    ]
    # Response set content-length for the body already; keep the plugin's other headers, repeats
    # (set-cookie) included.
    response.raw_headers = [h for h in response.raw_headers if h[0] == b"content-length"] + kept
    return response


def _json_error(status: int, detail: str, package: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "plugin": package}, status_code=status)
