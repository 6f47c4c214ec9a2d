"""Completion layer: a plugin's snapshot or result, checked before it can touch a run.

Contract: every value a plugin returns is validated and serialised on its own: NaN, infinities,
values that are not JSON, and anything larger than `MAX_RESULT_BYTES` are refused with a
`ResultError` naming the plugin, so one plugin's bad output becomes an error entry for that
plugin only and never reaches another plugin's keys or the core call data.
"""

from __future__ import annotations

from typing import Any

from ._store import to_json

MAX_RESULT_BYTES = 4 * 1024 * 1024  # a snapshot or a result summary; reports go to artifacts


class ResultError(ValueError):
    """A plugin returned something that cannot be stored."""

    def __init__(self, plugin: str, problem: str) -> None:
        super().__init__(f"plugin {plugin!r} returned an invalid result: {problem}")
        self.plugin = plugin
        self.problem = problem
        self.data: dict[str, Any] = {}


def check_result(plugin: str, value: Any, *, max_bytes: int = MAX_RESULT_BYTES) -> dict[str, Any]:
    """The value if it is a JSON object within the size limit; raises `ResultError` otherwise."""
    if not isinstance(value, dict):
        raise ResultError(plugin, f"expected a JSON object, got {type(value).__name__}")
    try:
        size = len(to_json(value).encode())
    except (TypeError, ValueError) as exc:
        raise ResultError(plugin, f"not strict JSON ({exc})") from None
    if size > max_bytes:
        raise ResultError(plugin, f"{size} bytes exceeds the limit of {max_bytes} bytes")
    return value


def error_entry(plugin: str, error: Exception) -> dict[str, Any]:
    """The entry recorded under `integration_<plugin>` in place of a refused value."""
    return {"error": type(error).__name__, "message": str(error), "plugin": plugin}
