"""Wire layer: the secret matcher behind `SecretScrubber`: one scan per text, cheap to change.

Contract: `SecretMatcher` holds secret values (each at least `KEY_LENGTH` characters) and replaces
them in text: leftmost first, the longest value starting there, never overlapping. A text is
scanned once, in C, by a trie-shaped regex over the values' first `KEY_LENGTH` characters
(nesting bounded by `KEY_LENGTH`, however many values), and the values behind the prefix found
are a dict lookup. Changing the set recompiles little: a value whose prefix is known costs a
dict update; a new prefix goes to a small delta pattern recompiled alone; past `DELTA_MAX` new
prefixes the base pattern is rebuilt, synchronously while the set is small and in a background
thread once it is large (the old base and the delta serve meanwhile, so nothing is missed).
Removing a value never recompiles at once: its stale prefix costs a failed lookup until the next
rebuild, which also drops the stale prefixes (memory follows the live set). Thread-safe: a scan
reads an immutable snapshot. Standard library only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

KEY_LENGTH = 6  # == MIN_SECRET_LENGTH: every value has a prefix this long
DELTA_MAX = 256  # new prefixes kept outside the base pattern before it is rebuilt
SYNC_MAX = 2_000  # a base of more prefixes is compiled in a background thread


Trie = dict[str, "Trie"]


def trie_pattern(prefixes: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of `prefixes`, shaped as their trie (nesting <= their length)."""
    trie: Trie = {}
    for prefix in prefixes:
        node = trie
        for char in prefix:
            node = node.setdefault(char, {})
    return re.compile(_render(trie)) if trie else None


def _render(node: Trie) -> str:
    branches = [re.escape(char) + _render(child) for char, child in sorted(node.items())]
    if len(branches) <= 1:
        return branches[0] if branches else ""
    return "(?:" + "|".join(branches) + ")"


class _Scan:
    """The next match of one pattern at or after a position, searched again only when passed."""

    def __init__(self, pattern: re.Pattern[str] | None, text: str) -> None:
        self.pattern, self.text, self.at = pattern, text, -1
        self.match: re.Match[str] | None = None

    def next_from(self, pos: int) -> int:
        if self.pattern is None:
            return -1
        if self.at != -2 and (self.match is None or self.match.start() < pos):
            self.match = self.pattern.search(self.text, pos)
            self.at = -2 if self.match is None else self.match.start()
        return self.at if self.at >= 0 else -1


class _Bucket:
    """The values behind one prefix, by length: a candidate is checked with one set lookup per
    distinct length (keys of one provider share a prefix and a length: one lookup)."""

    __slots__ = ("by_length", "lengths")

    def __init__(self) -> None:
        self.by_length: dict[int, set[str]] = {}
        self.lengths: tuple[int, ...] = ()  # longest first; replaced whole, read without a lock

    def add(self, value: str) -> bool:
        same = self.by_length.setdefault(len(value), set())
        if value in same:
            return False
        same.add(value)
        if len(same) == 1:
            self.lengths = tuple(sorted(self.by_length, reverse=True))
        return True

    def remove(self, value: str) -> bool:
        same = self.by_length.get(len(value))
        if same is None or value not in same:
            return False
        same.discard(value)
        if not same:
            del self.by_length[len(value)]
            self.lengths = tuple(sorted(self.by_length, reverse=True))
        return True

    def longest_at(self, text: str, start: int) -> str | None:
        for length in self.lengths:
            candidate = text[start : start + length]
            if len(candidate) == length and candidate in self.by_length.get(length, ()):
                return candidate
        return None


class SecretMatcher:
    """A changing set of secret values, found and replaced in text (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, _Bucket] = {}  # prefix -> its values
        self._base: tuple[re.Pattern[str] | None, frozenset[str]] = (None, frozenset())
        self._delta: tuple[re.Pattern[str] | None, frozenset[str]] = (None, frozenset())
        self._stale = 0  # prefixes in the base with no value left
        self._building = False
        self._idle = threading.Event()  # no background build running
        self._idle.set()
        self.rebuilds = 0  # how often the base pattern was compiled (for tests and benches)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no background build runs (tests, benches); False on timeout."""
        return self._idle.wait(timeout)

    def __len__(self) -> int:
        return sum(len(same) for b in self._values.values() for same in b.by_length.values())

    def add(self, value: str) -> None:
        """Know `value` (one shorter than `KEY_LENGTH` is ignored: it has no prefix to index)."""
        if len(value) < KEY_LENGTH:
            return
        with self._lock:
            prefix = value[:KEY_LENGTH]
            bucket = self._values.get(prefix)
            if bucket is None:
                bucket = self._values[prefix] = _Bucket()
            if not bucket.add(value):
                return
            if prefix in self._base[1] or prefix in self._delta[1]:
                return
            delta = self._delta[1] | {prefix}
            if len(delta) > DELTA_MAX and self._rebuild():
                return  # the new base holds it
            self._delta = (trie_pattern(delta), delta)

    def remove(self, value: str) -> None:
        with self._lock:
            prefix = value[:KEY_LENGTH]
            bucket = self._values.get(prefix)
            if bucket is None or not bucket.remove(value) or bucket.lengths:
                return
            del self._values[prefix]
            if prefix in self._delta[1]:
                delta = self._delta[1] - {prefix}
                self._delta = (trie_pattern(delta), delta)
            elif prefix in self._base[1]:
                self._stale += 1
                if self._stale > max(DELTA_MAX, len(self._base[1]) // 2):
                    self._rebuild()

    def sub(self, text: str, replace: Callable[[str], str]) -> str:
        """`text` with every value found replaced by `replace(value)`."""
        base, delta = self._base[0], self._delta[0]
        if base is None and delta is None:
            return text
        scans = (_Scan(base, text), _Scan(delta, text))
        values = self._values
        pieces: list[str] = []
        last = pos = 0
        while True:
            starts = [at for scan in scans if (at := scan.next_from(pos)) >= 0]
            if not starts:
                break
            start = min(starts)
            bucket = values.get(text[start : start + KEY_LENGTH])
            found = None if bucket is None else bucket.longest_at(text, start)
            if found is None:
                pos = start + 1  # a stale or partial prefix: look on from the next character
                continue
            pieces += (text[last:start], replace(found))
            last = pos = start + len(found)
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def _rebuild(self) -> bool:
        """Fold the delta into a new base of the live prefixes (caller holds the lock); True
        when done at once, False when a background build was started or is running."""
        live = frozenset(self._values)
        if len(live) <= SYNC_MAX:
            self._install(trie_pattern(live), live)
            return True
        if not self._building:
            self._building = True
            self._idle.clear()
            threading.Thread(target=self._build, args=(live,), daemon=True).start()
        return False

    def _build(self, live: frozenset[str]) -> None:
        pattern = trie_pattern(live)  # the slow part, outside the lock: scans go on meanwhile
        with self._lock:
            self._building = False
            self._install(pattern, live)
            self._idle.set()

    def _install(self, pattern: re.Pattern[str] | None, live: frozenset[str]) -> None:
        self.rebuilds += 1
        current = frozenset(self._values)
        delta = current - live  # prefixes added while it was built
        self._base = (pattern, live)
        self._delta = (trie_pattern(delta), delta)
        self._stale = len(live - current)
