"""Wire layer: the one mask rule and the one secret scrubber, shared by the host and the plugins.

Contract (the reference's rule, `contract-reference.md` "Masking"): the mask of a secret keeps its
last 4 characters and stars the rest (4 characters or fewer are fully starred); lists and dicts
are masked element-wise. `SecretScrubber` holds a set of real secret values (learnt from the
sensitive fields of node dicts, or from credential-like keys of a `user_config`) and replaces each
by its mask in text and JSON values; `ScrubbingFilter` applies it to log records. Both peers use
this module, so a secret is masked the same way in a plugin's log line, the host's log, an error
text and a stored result. `scrub` walks iteratively, replaces a container nested deeper than
`MAX_DEPTH` by `TOO_DEEP` and never raises; `scoped(values)` and `hold(values)` know values for
one request or run only. Matching is `SecretMatcher` (`_matcher.py`): one scan per text, changed
value by value. Standard library only.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ._matcher import KEY_LENGTH, SecretMatcher

MASK_CHAR = "*"
VISIBLE_TAIL = 4
MIN_SECRET_LENGTH = KEY_LENGTH  # 6: shorter values collide with ordinary words too often
MAX_DEPTH = 256  # JSON nested deeper than this is no data a plugin, a store or a log needs
TOO_DEEP = f"[plugbox: nested deeper than {MAX_DEPTH} levels]"
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
    """Known secret values, replaced by their masks in text and JSON values. Thread-safe.

    `add` learns values for the scrubber's lifetime; `scoped` for one block (a request, a run):
    reference-counted and forgotten on exit, so serving requests never grows the set.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._scoped: Counter[str] = Counter()
        self._matcher = SecretMatcher()  # their union; changed value by value, never rebuilt whole
        self.add(values)

    @property
    def known(self) -> int:
        """How many secret values are known (no `__len__`: an empty scrubber is still truthy)."""
        return len(self._secrets | self._scoped.keys())

    def add(self, values: Iterable[str]) -> None:
        """Learn more secret values; values shorter than `MIN_SECRET_LENGTH` are ignored."""
        fresh = _worth_scrubbing(values)
        with self._lock:
            for value in fresh - self._secrets:
                self._secrets.add(value)
                if value not in self._scoped:
                    self._matcher.add(value)

    @contextmanager
    def scoped(self, values: Iterable[str]) -> Iterator[SecretScrubber]:
        """Know `values` while the block runs, then forget them (unless learnt for good)."""
        release = self.hold(values)
        try:
            yield self
        finally:
            release()

    def hold(self, values: Iterable[str]) -> Callable[[], None]:
        """Know `values` until the returned release is called (a run's secrets, for as long as
        the run lives). Reference-counted per value; releasing twice releases once."""
        fresh = _worth_scrubbing(values)
        with self._lock:
            for value in fresh:
                if value not in self._scoped and value not in self._secrets:
                    self._matcher.add(value)
                self._scoped[value] += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                for value in fresh:
                    self._scoped[value] -= 1
                    if self._scoped[value] <= 0:
                        del self._scoped[value]
                        if value not in self._secrets:
                            self._matcher.remove(value)

        return release

    def add_from_nodes(
        self, nodes: Iterable[Mapping[str, Any]], sensitive: SensitiveLookup
    ) -> None:
        """Learn the sensitive field values of node dicts (`{"type", "data"}`)."""
        found = node_secrets(nodes, sensitive)
        if found:  # most calls carry none: no lock, no set work (every completion call asks)
            self.add(found)

    def values(self) -> frozenset[str]:
        """Every secret value known now (lifetime and scoped)."""
        with self._lock:
            return frozenset(self._secrets | self._scoped.keys())

    def merge(self, other: SecretScrubber) -> None:
        """Learn every value another scrubber knows."""
        self.add(other.values())

    def scrub_text(self, text: str) -> str:
        if not text:
            return text
        return self._matcher.sub(text, mask)

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON value with every known secret in its strings (and keys) masked.

        Iterative (no recursion limit to hit); a container nested deeper than `MAX_DEPTH` becomes
        `TOO_DEEP`. Never raises: a value it cannot walk becomes a marker naming its type.
        """
        try:
            return self._scrub(value)
        except Exception:  # on every error path: a scrubber must not raise
            return f"[plugbox: unreadable {type(value).__name__}]"

    def _scrub(self, value: Any) -> Any:
        root: list[Any] = [None]
        # (source value, target container, key or index in it, depth)
        stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
        while stack:
            item, target, slot, depth = stack.pop()
            if isinstance(item, str):
                target[slot] = self.scrub_text(item)
            elif isinstance(item, dict | list) and depth >= MAX_DEPTH:
                target[slot] = TOO_DEEP
            elif isinstance(item, list):
                copied: list[Any] = [None] * len(item)
                target[slot] = copied
                stack.extend((entry, copied, i, depth + 1) for i, entry in enumerate(item))
            elif isinstance(item, dict):
                mapping: dict[str, Any] = {}
                target[slot] = mapping
                for key, entry in item.items():
                    name = self.scrub_text(str(key))
                    mapping[name] = None
                    stack.append((entry, mapping, name, depth + 1))
            else:
                target[slot] = item
        return root[0]


def _worth_scrubbing(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)


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
