"""Store layer: reaching PostgreSQL — the URL, a small connection pool, and which faults pass.

Contract: `PgTarget.parse(url)` splits plugbox's own `schema` parameter (default `plugbox`) off a
libpq URL (`postgresql://user:pass@host:5432/db?schema=plugbox&sslmode=require`); every
connection runs with `search_path` set to that schema, so a platform can give plugbox a schema
of its own database. `str(target)` names it without the password (error messages, logs).
`Pool` lends at most `size` autocommit connections; one that failed, or was given back inside a
transaction (a cancelled call), is closed instead of reused. `classify(exc)` says whether a
database error is transient (connection lost, server shutting down or starting, serialization
failure, deadlock, disk full, too many connections: the same work may succeed later) or
persistent (bad credentials, no such database, a bug in a statement).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

from ._faults import StoreError

DEFAULT_SCHEMA = "plugbox"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Connect-time failures that waiting cannot fix (psycopg reports them without a SQLSTATE).
_PERSISTENT_TEXT = ("authentication failed", "does not exist", "no pg_hba.conf entry")


@dataclass(frozen=True)
class PgTarget:
    conninfo: str  # the URL without plugbox's own parameters, for libpq
    schema: str
    display: str  # the URL without its password

    @classmethod
    def parse(cls, url: str, schema: str | None = None) -> PgTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise StoreError(f"run store URL {url!r}: expected postgresql://")
        query = parse_qsl(parts.query, keep_blank_values=True)
        named = [value for key, value in query if key == "schema"]
        chosen = schema or (named[-1] if named else DEFAULT_SCHEMA)
        if not _IDENTIFIER.fullmatch(chosen):
            raise StoreError(f"run store schema {chosen!r}: expected a plain SQL identifier")
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        conninfo = urlunsplit(parts._replace(query=rest))
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        display = urlunsplit(parts._replace(netloc=netloc, query=""))
        return cls(conninfo, chosen, f"{display} (schema {chosen})")

    def __str__(self) -> str:
        return self.display


class Pool:
    """At most `size` connections, made on demand and reused while healthy."""

    def __init__(self, target: PgTarget, size: int, connect_timeout_s: float) -> None:
        self.target = target
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = anyio.Semaphore(size)
        self._closed = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self.target.conninfo,
            autocommit=True,
            connect_timeout=max(1, int(self.connect_timeout_s)),
            options=f"-c search_path={self.target.schema}",
            application_name="plugbox",
        )

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._closed:
            raise StoreError(f"run store {self.target} is not open")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            healthy = False
            try:
                yield conn
                healthy = conn.info.transaction_status is TransactionStatus.IDLE
            finally:
                if healthy and not conn.closed and not self._closed:
                    self._idle.append(conn)
                else:
                    with anyio.CancelScope(shield=True):
                        await _close(conn)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):  # a broken one cannot close cleanly; nothing is lost
        await conn.close()


_TRANSIENT_CLASSES: tuple[type[BaseException], ...] = (
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.LockNotAvailable,
    errors.DiskFull,
    errors.OutOfMemory,
    errors.TooManyConnections,
    errors.AdminShutdown,
    errors.CrashShutdown,
    errors.CannotConnectNow,
    errors.QueryCanceled,
)


def classify(exc: BaseException) -> str | None:
    """A short reason when `exc` is a transient database fault, else None."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return type(exc).__name__
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return None
    if getattr(exc, "sqlstate", None) is None:  # connection-level: lost, refused, timed out
        text = str(exc).lower()
        if any(part in text for part in _PERSISTENT_TEXT):
            return None
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = str(exc.sqlstate)
    return sqlstate if sqlstate.startswith(("08", "53", "57", "40")) else None


def describe(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__} [{state}]: {text}" if state else f"{type(exc).__name__}: {text}"
