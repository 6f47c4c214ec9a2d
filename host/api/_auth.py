"""HTTP layer: bearer-token authentication in front of every non-public endpoint.

Contract: with a token configured (`create_app(..., token=...)`; `plugbox serve` always has one:
`PLUGBOX_API_TOKEN`, or generated and printed once), a request must carry `Authorization:
Bearer <token>`, or the `plugbox_token` cookie a browser gets by opening `/ui?token=<token>`
once (HttpOnly, SameSite=Strict). Anything else is 401 with `WWW-Authenticate: Bearer`. Public:
`/healthz`, `/readyz` (probes) and `/api/v1/public/...` (run artifacts, addressed by their own
unguessable run token). The platform's token is removed from the request once checked, so no
proxied plugin route ever receives it. Comparison is constant-time. Without a token (a platform
embedding the app behind its own authentication, tests) every request passes.
"""

from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC = ("/healthz", "/readyz", "/api/v1/public/")
COOKIE = "plugbox_token"


class TokenAuth:
    """ASGI middleware: a bearer token (or its cookie) on every non-public request."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] not in ("http", "websocket") or path.startswith(PUBLIC):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        query = _query_token(scope) if path.startswith("/ui") else None
        if query is not None and self._valid(query):
            await self.app(_without_token(scope, headers), receive, _setting_cookie(send, query))
            return
        if self._valid(_bearer(headers)) or self._valid(_cookie(headers)):
            await self.app(_without_token(scope, headers), receive, send)
            return
        await _refuse(send)

    def _valid(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.token)


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credential.strip()
    return None


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is simply no token
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _without_token(scope: Scope, headers: list[tuple[bytes, bytes]]) -> Scope:
    """The scope without the platform's credential, so no plugin route can receive it."""
    kept = [(n, v) for n, v in headers if n.lower() != b"authorization" or not _is_bearer(v)]
    return {**scope, "headers": kept}


def _is_bearer(value: bytes) -> bool:
    return value[:7].lower() == b"bearer "


def _setting_cookie(send: Send, token: str) -> Send:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return wrapped


async def _refuse(send: Send) -> None:
    payload = json.dumps({"detail": "missing or invalid bearer token"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
