"""HTTP layer: plugin errors mapped to HTTP responses with a JSON body naming the plugin.

Contract: a crashed plugin is 502, a deadline 504, an open circuit 503, any other plugin failure
502; the body is always `{"detail", "plugin", "method", "error"}` with secrets already scrubbed.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from sdk.protocol import CircuitOpen, PluginCrashed, PluginError, PluginTimeout

from .._redaction import SecretScrubber

_STATUS_BY_ERROR: tuple[tuple[type[PluginError], int], ...] = (
    (CircuitOpen, 503),
    (PluginTimeout, 504),
    (PluginCrashed, 502),
)


def status_for(error: PluginError) -> int:
    """The HTTP status a plugin error maps to."""
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 502


def plugin_error_response(
    error: PluginError, *, plugin: str, method: str, scrubber: SecretScrubber
) -> JSONResponse:
    """A JSON error response for a failed plugin call."""
    body = {
        "detail": scrubber.scrub_text(str(error)),
        "plugin": plugin,
        "method": method,
        "error": type(error).__name__,
    }
    return JSONResponse(body, status_code=status_for(error))
