"""HTTP layer: plugin errors mapped to HTTP responses with a JSON body naming the plugin.

Contract: a crashed plugin is 502, a deadline 504, an open circuit 503, any other plugin failure
502; the body is always `{"detail", "plugin", "method", "error"}` with secrets already scrubbed.
"""

from __future__ import annotations

from sdk.protocol import CircuitOpen, PluginCrashed, PluginError, PluginTimeout

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


def error_body(error: PluginError, *, plugin: str, method: str) -> dict[str, str]:
    """The JSON body of a failed plugin call (its text was scrubbed by the plugin's client)."""
    return {"detail": str(error), "plugin": plugin, "method": method, "error": type(error).__name__}
