"""Completion layer: the run store — the contract's `workflow_run`, in one SQLite file by default.

Contract: a run has its pinned workflow definition, definition and organization ids, an optional
public token, `logs` and `annotations`, and the run row's other `fields` packages read (`mode`,
`usage_info`, `recording_url`, ...: set at creation or later with `update_fields`). Logs and
annotations are stored one row per key and merged atomically per key, so concurrent writers never
lose each other's entries, and a key first written by one writer (a plugin, or the host) is never
overwritten by another: the attempt is refused and reported in the `MergeReport`. Results per
(run, node) make completion idempotent. The schema is versioned (`PRAGMA user_version`) and
migrated on open; the file runs in WAL mode.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio

from .._keys import HOST_WRITER, RESERVED_PREFIXES

T = TypeVar("T")

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        organization_id INTEGER NOT NULL,
        definition_id INTEGER,
        workflow_definition TEXT NOT NULL,
        public_token TEXT UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE entries (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        section TEXT NOT NULL CHECK (section IN ('logs', 'annotations')),
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, section, key)
    );
    CREATE TABLE node_results (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        node_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    """
    CREATE TABLE jobs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires REAL,
        enqueued_at REAL NOT NULL,
        finished_at REAL,
        error TEXT
    );
    """,
    # The run row's other fields packages read (`mode`, `usage_info`, `recording_url`, ...).
    "ALTER TABLE runs ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';",
)
SCHEMA_VERSION = len(_MIGRATIONS)
# Keys of the run that the store owns; `fields` never overrides them.
_CORE_RUN_KEYS = frozenset({"id", "definition_id", "organization_id", "logs", "annotations"})


@dataclass(frozen=True)
class WorkflowRun:
    id: int
    workflow_definition: dict[str, Any]
    definition_id: int | None
    organization_id: int
    public_token: str | None
    logs: dict[str, Any]
    annotations: dict[str, Any]
    created_at: float
    fields: dict[str, Any] = field(default_factory=dict)  # mode, usage_info, recording_url, ...

    def as_contract_dict(self) -> dict[str, Any]:
        """The run as a plugin sees it (`context.workflow_run`)."""
        return {
            **{key: value for key, value in self.fields.items() if key not in _CORE_RUN_KEYS},
            "id": self.id,
            "definition_id": self.definition_id,
            "organization_id": self.organization_id,
            "logs": self.logs,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class MergeReport:
    applied: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, its owner)


def to_json(value: Any) -> str:
    """Strict JSON: NaN, infinities and non-JSON objects raise ValueError/TypeError."""
    return json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))


class SQLiteRunStore:
    """The embedded run store. One connection, used from worker threads under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    async def __aenter__(self) -> SQLiteRunStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        await self._run(_migrate)

    async def aclose(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            assert self._db is not None, "store is not open"
            with self._lock:
                return work(self._db)

        return await anyio.to_thread.run_sync(locked)

    # -- runs -----------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        workflow_definition: dict[str, Any],
        definition_id: int | None = None,
        organization_id: int = 0,
        logs: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> int:
        """A new run; `fields` are the run row's other fields (`mode`, `initial_context`, ...)."""

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO runs"
                " (organization_id, definition_id, workflow_definition, created_at, fields)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    organization_id,
                    definition_id,
                    to_json(workflow_definition),
                    time.time(),
                    to_json(fields or {}),
                ),
            )
            return int(cursor.lastrowid or 0)

        run_id = await self._run(work)
        if logs:
            await self.merge_logs(run_id, logs, writer=HOST_WRITER)
        return run_id

    async def get_run(self, run_id: int) -> WorkflowRun | None:
        return await self._run(lambda db: _load_run(db, "id = ?", run_id))

    async def get_run_by_token(self, token: str) -> WorkflowRun | None:
        def work(db: sqlite3.Connection) -> WorkflowRun | None:
            row = db.execute(
                "SELECT id, public_token FROM runs WHERE public_token = ?", (token,)
            ).fetchone()
            if row is None or not hmac.compare_digest(str(row[1]).encode(), token.encode()):
                return None
            return _load_run(db, "id = ?", row[0])

        return await self._run(work)

    async def ensure_public_token(self, run_id: int) -> str:
        def work(db: sqlite3.Connection) -> str:
            db.execute(
                "UPDATE runs SET public_token = ? WHERE id = ? AND public_token IS NULL",
                (secrets.token_urlsafe(32), run_id),
            )
            row = db.execute("SELECT public_token FROM runs WHERE id = ?", (run_id,)).fetchone()
            return str(row[0])

        return await self._run(work)

    async def update_fields(self, run_id: int, fields: dict[str, Any]) -> None:
        """Merge run fields known only later (`usage_info`, `recording_url`) into the run."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")  # read-modify-write: another process may write too
            try:
                row = db.execute("SELECT fields FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no run {run_id}")
                merged = {**json.loads(row[0]), **fields}
                db.execute("UPDATE runs SET fields = ? WHERE id = ?", (to_json(merged), run_id))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._run(work)

    # -- logs and annotations -------------------------------------------------------------------

    async def merge_logs(self, run_id: int, entries: dict[str, Any], *, writer: str) -> MergeReport:
        return await self._run(lambda db: _merge(db, run_id, "logs", entries, writer))

    async def merge_annotations(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeReport:
        return await self._run(lambda db: _merge(db, run_id, "annotations", entries, writer))

    # -- node results and artifacts ---------------------------------------------------------------

    async def recorded_nodes(self, run_id: int) -> dict[str, str]:
        """node id -> status of every node result recorded for the run."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT node_id, status FROM node_results WHERE run_id = ?", (run_id,)
            ).fetchall()
        )
        return {str(node): str(status) for node, status in rows}

    async def record_node_result(
        self, run_id: int, node_id: str, *, plugin: str, status: str, attempts: int
    ) -> bool:
        """Record once; returns False when (run, node) was already recorded."""

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO node_results VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, node_id, plugin, status, attempts, time.time()),
            )
            return cursor.rowcount == 1

        return await self._run(work)

    async def put_artifact(self, run_id: int, name: str, content_type: str, body: bytes) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)",
                (run_id, name, content_type, body),
            )
        )

    async def get_artifact(self, run_id: int, name: str) -> tuple[str, bytes] | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT content_type, body FROM artifacts WHERE run_id = ? AND name = ?",
                (run_id, name),
            ).fetchone()
        )
        return (str(row[0]), bytes(row[1])) if row else None

    async def list_artifacts(self, run_id: int) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT name FROM artifacts WHERE run_id = ? ORDER BY name", (run_id,)
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    async def execute(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in the store's thread under its lock (for the job queue)."""
        return await self._run(work)


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {number}; COMMIT;")


def _load_run(db: sqlite3.Connection, where: str, value: Any) -> WorkflowRun | None:
    row = db.execute(
        "SELECT id, workflow_definition, definition_id, organization_id, public_token, created_at,"
        f" fields FROM runs WHERE {where}",
        (value,),
    ).fetchone()
    if row is None:
        return None
    sections: dict[str, dict[str, Any]] = {"logs": {}, "annotations": {}}
    for section, key, text in db.execute(
        "SELECT section, key, value FROM entries WHERE run_id = ? ORDER BY rowid", (row[0],)
    ):
        sections[section][key] = json.loads(text)
    return WorkflowRun(
        id=row[0],
        workflow_definition=json.loads(row[1]),
        definition_id=row[2],
        organization_id=row[3],
        public_token=row[4],
        logs=sections["logs"],
        annotations=sections["annotations"],
        created_at=row[5],
        fields=json.loads(row[6]),
    )


def _merge(
    db: sqlite3.Connection, run_id: int, section: str, entries: dict[str, Any], writer: str
) -> MergeReport:
    encoded = {str(key): to_json(value) for key, value in entries.items()}
    report = MergeReport()
    db.execute("BEGIN IMMEDIATE")
    try:
        for key, text in encoded.items():
            row = db.execute(
                "SELECT owner FROM entries WHERE run_id = ? AND section = ? AND key = ?",
                (run_id, section, key),
            ).fetchone()
            if row is not None and row[0] != writer:
                report.refused.append((key, str(row[0])))
                continue
            if writer != HOST_WRITER and key.startswith(RESERVED_PREFIXES):
                report.refused.append((key, HOST_WRITER))
                continue
            db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, section, key)"
                " DO UPDATE SET value = excluded.value",
                (run_id, section, key, writer, text),
            )
            report.applied.append(key)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return report
