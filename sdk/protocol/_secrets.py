"""Wire layer: the one mask rule and the one secret scrubber, shared by the host and the plugins.

Contract (the reference's rule, `contract-reference.md` "Masking"): the mask of a secret keeps its
last 4 characters and stars the rest (4 characters or fewer are fully starred); lists and dicts
are masked element-wise. `SecretScrubber` holds a set of real secret values (learnt from the
sensitive fields of node dicts, or from credential-like keys of a `user_config`) and replaces each
by its mask in text and JSON values; `ScrubbingFilter` applies it to log records. Both peers use
this module, so a secret is masked the same way in a plugin's log line, the host's log, an error
text and a stored result. Standard library only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

MASK_CHAR = "*"
VISIBLE_TAIL = 4
MIN_SECRET_LENGTH = 6  # shorter values collide with ordinary words too often to scrub
# Keys in `user_config` that hold provider credentials (API keys, tokens, passwords...).
CREDENTIAL_KEY = re.compile(
    r"(api[_-]?key|secret|token|password|passwd|credential|private[_-]?key|auth)", re.IGNORECASE
)

SensitiveLookup = Callable[[str], Sequence[str]] | Mapping[str, Sequence[str]]
"""The sensitive field names of a node type: a lookup function or a type -> fields mapping."""


def mask(text: str) -> str:
    """The mask of one secret string."""
    if len(text) <= VISIBLE_TAIL:
        return MASK_CHAR * len(text)
    return MASK_CHAR * (len(text) - VISIBLE_TAIL) + text[-VISIBLE_TAIL:]


def mask_value(value: Any) -> Any:
    """The mask of a secret value; lists and dicts element-wise, numbers and null unchanged."""
    if isinstance(value, str):
        return mask(value) if value else value
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    if isinstance(value, dict):
        return {key: mask_value(item) for key, item in value.items()}
    return value


def iter_nodes(definition: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The node dicts of a definition whose `nodes` is a list or an id -> node mapping."""
    nodes = definition.get("nodes")
    values = nodes.values() if isinstance(nodes, dict) else nodes if isinstance(nodes, list) else ()
    for node in values:
        if isinstance(node, dict):
            yield node


def node_data(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's `data` dict (empty when absent or malformed)."""
    data = node.get("data")
    return data if isinstance(data, dict) else {}


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)


def node_secrets(nodes: Iterable[Mapping[str, Any]], sensitive: SensitiveLookup) -> set[str]:
    """Every real secret string in the sensitive fields of some node dicts."""
    lookup = sensitive.get if isinstance(sensitive, Mapping) else sensitive
    found: set[str] = set()
    for node in nodes:
        data = node_data(node)
        for field in lookup(str(node.get("type", ""))) or ():
            found.update(strings_in(data.get(field)))
    return found


def credential_secrets(user_config: Mapping[str, Any]) -> set[str]:
    """Every credential-like string in a `user_config` mapping, at any depth."""
    found: set[str] = set()
    for key, item in user_config.items():
        if CREDENTIAL_KEY.search(str(key)):
            found.update(strings_in(item))
        elif isinstance(item, Mapping):
            found.update(credential_secrets(item))
    return found


class SecretScrubber:
    """Known secret values, replaced by their masks in text and JSON values. Thread-safe."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    @property
    def known(self) -> int:
        """How many secret values are known (no `__len__`: an empty scrubber is still truthy)."""
        return len(self._secrets)

    def add(self, values: Iterable[str]) -> None:
        """Learn more secret values; values shorter than `MIN_SECRET_LENGTH` are ignored."""
        fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        with self._lock:
            if fresh <= self._secrets:
                return
            self._secrets = self._secrets | fresh
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_from_nodes(
        self, nodes: Iterable[Mapping[str, Any]], sensitive: SensitiveLookup
    ) -> None:
        """Learn the sensitive field values of node dicts (`{"type", "data"}`)."""
        self.add(node_secrets(nodes, sensitive))

    def merge(self, other: SecretScrubber) -> None:
        """Learn every value another scrubber knows."""
        self.add(other._secrets)

    def scrub_text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(lambda match: mask(match.group(0)), text)

    def scrub(self, value: Any) -> Any:
        """A JSON value with every known secret in its strings (and keys) masked (a copy if any)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, dict):
            return {self.scrub_text(str(key)): self.scrub(item) for key, item in value.items()}
        return value


class ScrubbingFilter(logging.Filter):
    """Rewrites each record's message and traceback through a scrubber before any handler."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrubber.scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = self.scrubber.scrub_text(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = self.scrubber.scrub_text(record.exc_text)
        return True
