"""HTTP layer: what crosses the proxy between an API client and a plugin's routes.

Contract: a plugin's routes run on the API's origin, so the proxy never lends them the platform's
authority. Requests carry only allow-listed headers (`REQUEST_HEADERS`, and `x-*` ones that are
not credentials); `Cookie`, `Authorization`, `X-Api-Key` and other credential headers reach a
plugin only when the operator grants them by name (`request_headers` in its grants entry).
Responses lose headers that would act for the origin (`Set-Cookie`, CORS, CSP, HSTS, framing);
every answer gets `X-Content-Type-Options: nosniff`, and an HTML, XML or SVG answer also gets
`Content-Security-Policy: sandbox`, so a plugin's page runs scripts, if any, in a unique origin.
A status outside 200-599 or a header that is not valid latin-1 text without CR/LF is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-language",
        "cache-control",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "pragma",
        "range",
        "user-agent",
    }
)
# Credential-bearing headers: never forwarded unless granted by name (also among `x-*`).
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-api-key", "x-auth-token", "x-csrf-token"}
)
# Response headers a plugin may not set on the API's origin.
_RESPONSE_DENIED = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "content-security-policy",
        "content-security-policy-report-only",
        "strict-transport-security",
        "x-frame-options",
        "x-content-type-options",
        "clear-site-data",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
    }
)
_ACTIVE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml")


def request_headers(
    headers: Iterable[tuple[str, str]], granted: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The client's headers a plugin may see (names lower-cased)."""
    extra = {name.lower() for name in granted}
    kept = []
    for name, value in headers:
        key = name.lower()
        allowed = key in REQUEST_HEADERS or (key.startswith("x-") and key not in CREDENTIAL_HEADERS)
        if allowed or key in extra:
            kept.append((key, value))
    return kept


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """A plugin's response headers as the API sends them: filtered, then the host's own added."""
    kept: list[tuple[bytes, bytes]] = []
    content_type = ""
    for name, value in headers:
        key = name.lower()
        if key in _RESPONSE_DENIED or key.startswith("access-control-") or not _valid(key, value):
            continue
        if key == "content-type":
            content_type = value.lower()
        kept.append((key.encode("latin-1"), value.encode("latin-1")))
    kept.append((b"x-content-type-options", b"nosniff"))
    if content_type.startswith(_ACTIVE_TYPES) or "+xml" in content_type:
        kept.append((b"content-security-policy", b"sandbox"))
    return kept


def valid_status(status: int) -> bool:
    """Only final, defined status classes: no 1xx (the proxy sends one answer), nothing >599."""
    return 200 <= status <= 599


def _valid(name: str, value: str) -> bool:
    if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
        return False
    try:
        name.encode("latin-1")
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
