"""Server layer: secret values learnt from node data, masked out of logs and error texts.

Contract: the plugin server registers the values of sensitive fields it receives (validate,
runtime.open, completion.run); `SecretRedactor.redact(text)` replaces each by its mask (last 4
characters kept, the rest starred), so no secret leaves the plugin in a log line or a traceback.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MIN_LENGTH = 6  # shorter values collide with ordinary words too often to scrub


def mask(value: str) -> str:
    keep = 4
    return "*" * len(value) if len(value) <= keep else "*" * (len(value) - keep) + value[-keep:]


class SecretRedactor:
    """A thread-safe set of secret strings and a compiled pattern matching any of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        fresh = {value for value in values if isinstance(value, str) and len(value) >= _MIN_LENGTH}
        with self._lock:
            if fresh <= self._values:
                return
            self._values |= fresh
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_from_nodes(
        self, nodes: Iterable[Mapping[str, Any]], sensitive: Mapping[str, Sequence[str]]
    ) -> None:
        """Learn the sensitive field values of node dicts (`{"type", "data"}`)."""
        found: list[str] = []
        for node in nodes:
            data = node.get("data")
            if not isinstance(data, Mapping):
                continue
            for field in sensitive.get(str(node.get("type")), ()):
                found.extend(_strings(data.get(field)))
        self.add(found)

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(lambda m: mask(m.group(0)), text) if pattern and text else text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for entry in value for item in _strings(entry)]
    if isinstance(value, Mapping):
        return [item for entry in value.values() for item in _strings(entry)]
    return []
