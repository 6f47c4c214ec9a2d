"""Server layer: a package's FastAPI routers served in-process for `http.request`.

Contract: built lazily the first time routes are needed (fastapi is then a dependency of that
plugin only, never of the SDK); one request in, one complete response out. The route table and
the OpenAPI fragment (paths relative to the package's mount point) go into the `spec` answer.
"""

from __future__ import annotations

from typing import Any

from .protocol._methods import HttpRequestParams, HttpResponseResult, RouteInfo


class RoutesApp:
    """The package's routers as one ASGI application."""

    def __init__(self, routers: tuple[Any, ...]) -> None:
        from fastapi import FastAPI  # the plugin's own dependency, imported only when needed

        self.app = FastAPI(openapi_url="/openapi.json", docs_url=None, redoc_url=None)
        for router in routers:
            self.app.include_router(router)

    def route_table(self) -> list[RouteInfo]:
        """Every declared operation, read from the OpenAPI document (the routers' own view)."""
        paths: dict[str, dict[str, Any]] = self.openapi()["paths"]
        return [
            RouteInfo(
                path=path,
                methods=sorted(method.upper() for method in operations),
                name=_operation_id(operations),
            )
            for path, operations in paths.items()
        ]

    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.app.openapi()
        return {"paths": schema.get("paths", {}), "components": schema.get("components", {})}

    async def handle(self, request: HttpRequestParams) -> HttpResponseResult:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method.upper(),
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode(),
            "root_path": "",
            "query_string": request.query_string.encode("latin-1"),
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers
            ],
            "client": ("127.0.0.1", 0),
            "server": ("plugbox-plugin", 80),
        }
        response = _Collector()
        await self.app(scope, _receiver(request.body), response)  # type: ignore[arg-type]
        return HttpResponseResult(
            status=response.status, headers=response.headers, body=b"".join(response.body)
        )


def _operation_id(operations: dict[str, Any]) -> str:
    first: dict[str, Any] = next(iter(operations.values()), {})
    return str(first.get("operationId", ""))


def _receiver(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class _Collector:
    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            self.body.append(bytes(message.get("body", b"")))
