"""Boundary layer: a plugin's answer checked before it can become host data.

Contract: `check_result(plugin, value)` returns a JSON object only if it is strict JSON (no NaN, no
infinities, nothing that is not JSON), no larger than `MAX_RESULT_BYTES` once serialised and no
deeper than `MAX_RESULT_DEPTH`; anything else raises `ResultError` naming the plugin, so one
plugin's bad output becomes an error entry for that plugin only and never reaches another
plugin's keys or the core call data. `error_entry` is what is recorded in place of a refused value.
"""

from __future__ import annotations

import json
from typing import Any

MAX_RESULT_BYTES = 4 * 1024 * 1024  # a snapshot or a result summary; reports go to artifacts
MAX_RESULT_DEPTH = 64  # far deeper than any real summary; stops a recursion bomb in the encoder


class ResultError(ValueError):
    """A plugin returned something that cannot be stored."""

    def __init__(self, plugin: str, problem: str) -> None:
        super().__init__(f"plugin {plugin!r} returned an invalid result: {problem}")
        self.plugin = plugin
        self.problem = problem
        self.data: dict[str, Any] = {}


def check_result(
    plugin: str,
    value: Any,
    *,
    max_bytes: int = MAX_RESULT_BYTES,
    max_depth: int = MAX_RESULT_DEPTH,
) -> dict[str, Any]:
    """The value if it is a JSON object within the limits; raises `ResultError` otherwise."""
    if not isinstance(value, dict):
        raise ResultError(plugin, f"expected a JSON object, got {type(value).__name__}")
    too_deep = _too_deep(value, max_depth)
    if too_deep is not None:
        raise ResultError(plugin, f"nested deeper than {max_depth} levels at {too_deep}")
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise ResultError(plugin, f"not strict JSON ({exc})") from None
    if size > max_bytes:
        raise ResultError(plugin, f"{size} bytes exceeds the limit of {max_bytes} bytes")
    return value


def _too_deep(value: Any, limit: int) -> str | None:
    """The JSON path (shortened) of a container nested deeper than `limit`, found iteratively;
    None when there is none."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(value, 1, ())]
    while stack:
        item, level, path = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if level > limit:
            shown = "".join(path[:12]) + ("..." if len(path) > 12 else "")
            return f"$.{shown.lstrip('.')}" if shown else "$"
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            step = f"[{key}]" if isinstance(item, list) else f".{key}"
            stack.append((child, level + 1, (*path, step) if len(path) < 13 else path))
    return None


def error_entry(plugin: str, error: Exception) -> dict[str, Any]:
    """The entry recorded under `integration_<plugin>` in place of a refused value."""
    return {"error": type(error).__name__, "message": str(error), "plugin": plugin}
