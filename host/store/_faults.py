"""Store layer: storage faults — which ones pass, how long to wait them out, and the error tree.

Contract: `classify(exc)` says whether a database error is transient (busy or locked, disk full,
I/O error: the same work may succeed later) or persistent (corrupt file, not a database,
read-only, no permission: it will not). `Backoff` spaces the retries of transient faults
(exponential, capped, jittered) within a budget. A persistent fault, or a transient one that
outlasts the budget, becomes `StoreError` / `StoreUnavailable`, whose message names the file.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass, field

from sdk.protocol import PluginError

FAULT_BUDGET_S = 600.0  # how long a worker waits out a busy lock or a full disk before giving up
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 2.0

# SQLite primary result codes (`sqlite_errorcode & 0xFF`), see https://sqlite.org/rescode.html
_TRANSIENT = {
    5: "busy",  # SQLITE_BUSY: another connection holds the lock
    6: "locked",  # SQLITE_LOCKED
    10: "I/O error",  # SQLITE_IOERR
    13: "disk full",  # SQLITE_FULL
    14: "cannot open",  # SQLITE_CANTOPEN: e.g. no space for the journal, or a brief rename
}
_TRANSIENT_TEXT = ("locked", "busy", "disk is full", "disk i/o error", "unable to open")


class StoreError(PluginError):
    """The run store cannot do what was asked; the message names the database."""

    code = -32020


class StoreUnavailable(StoreError):
    """A transient storage fault lasted longer than the fault budget."""

    code = -32021


def classify(exc: BaseException) -> str | None:
    """A short reason when `exc` is a transient database fault, else None."""
    if not isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _TRANSIENT:
        return _TRANSIENT[code & 0xFF]
    text = str(exc).lower()
    if code is None and any(part in text for part in _TRANSIENT_TEXT):
        return text
    return None


def describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{name}: {exc}" if name else f"{type(exc).__name__}: {exc}"


@dataclass
class Backoff:
    """Delays between retries of a transient fault, within `budget_s`."""

    budget_s: float = FAULT_BUDGET_S
    started: float = field(default_factory=time.monotonic)
    tries: int = 0

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try, or None when the budget is spent."""
        left = self.started + self.budget_s - time.monotonic()
        if left <= 0:
            return None
        ceiling = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2**self.tries)
        self.tries += 1
        return min(left, random.uniform(ceiling / 2, ceiling))
