"""Least-privilege layer: what a plugin may see, and secret values scrubbed from every channel.

Contract: everything the host sends a plugin passes through `redact_for_plugin`, which returns a
serialised copy in which every sensitive field of every node *not* of that plugin's types carries
its mask, and every provider credential in `user_config` is masked. A plugin sees its own nodes'
secrets in clear and nobody else's. `SecretScrubber` knows the real secret values seen in
definitions and replaces them by their masks in log records, error texts and stored results. Both
are generic: they are driven only by the node types' `sensitive_fields`.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from ._masking import SensitiveFields, iter_nodes, mask_value, node_data

# Keys in `user_config` that hold provider credentials (API keys, tokens, passwords...).
_CREDENTIAL_KEY = re.compile(
    r"(api[_-]?key|secret|token|password|passwd|credential|private[_-]?key|auth)", re.IGNORECASE
)
_MIN_SECRET_LENGTH = 6  # shorter values are too likely to collide with ordinary text to scrub


def redact_for_plugin(payload: Any, *, own_types: Iterable[str], sensitive: SensitiveFields) -> Any:
    """Return a deep copy of `payload` fit to send to the plugin owning `own_types`.

    Node dicts (`{"type": str, "data": dict}`) anywhere in the payload have the sensitive fields of
    foreign types masked; a `user_config` mapping anywhere has its credential-like keys masked.
    """
    owned = frozenset(own_types)
    copied = copy.deepcopy(payload)
    _walk(copied, owned, sensitive)
    return copied


def _walk(value: Any, owned: frozenset[str], sensitive: SensitiveFields) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, owned, sensitive)
        return
    if not isinstance(value, dict):
        return
    if _is_node(value) and value["type"] not in owned:
        data = value["data"]
        for field in sensitive(value["type"]):
            if data.get(field) not in (None, ""):
                data[field] = mask_value(data[field])
    for key, item in value.items():
        if key == "user_config" and isinstance(item, dict):
            _mask_credentials(item)
        _walk(item, owned, sensitive)


def _is_node(value: dict[str, Any]) -> bool:
    return isinstance(value.get("type"), str) and isinstance(value.get("data"), dict)


def _mask_credentials(config: dict[str, Any]) -> None:
    """Mask credential-like keys at any depth of a user_config mapping, in place."""
    for key, item in config.items():
        if _CREDENTIAL_KEY.search(str(key)) and isinstance(item, str | list | dict):
            config[key] = mask_value(item)
        elif isinstance(item, dict):
            _mask_credentials(item)


def secret_values(definition: dict[str, Any], sensitive: SensitiveFields) -> set[str]:
    """Every real secret string in a definition's sensitive fields (for the scrubber)."""
    found: set[str] = set()
    for node in iter_nodes(definition):
        data = node_data(node)
        for field in sensitive(str(node.get("type", ""))):
            found.update(_strings(data.get(field)))
    return found


def credential_values(user_config: dict[str, Any]) -> set[str]:
    """Every credential-like string in a user_config mapping (for the scrubber)."""
    found: set[str] = set()
    for key, item in user_config.items():
        if _CREDENTIAL_KEY.search(str(key)):
            found.update(_strings(item))
        elif isinstance(item, dict):
            found.update(credential_values(item))
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


class SecretScrubber:
    """Replaces known secret values by their masks in text and JSON values. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        """Learn more secret values; values shorter than a few characters are ignored."""
        fresh = {value for value in values if len(value) >= _MIN_SECRET_LENGTH}
        with self._lock:
            if fresh <= self._secrets:
                return
            self._secrets = self._secrets | fresh
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def scrub_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(lambda match: str(mask_value(match.group(0))), text)

    def scrub(self, value: Any) -> Any:
        """Return a copy of a JSON value with every known secret inside its strings masked."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, dict):
            return {self.scrub_text(str(key)): self.scrub(item) for key, item in value.items()}
        return value


class ScrubbingFilter(logging.Filter):
    """A logging filter that rewrites each record's message and arguments through a scrubber."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self._scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._scrubber.scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = self._scrubber.scrub_text(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = self._scrubber.scrub_text(record.exc_text)
        return True
