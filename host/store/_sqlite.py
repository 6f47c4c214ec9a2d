"""Store layer: the embedded run store — the contract's `workflow_run`, in one SQLite file.

Contract: implements `RunStore`. A run has its pinned workflow definition, definition and
organization ids, an optional public token, `logs` and `annotations`, stored one row per key and
merged atomically per key, so concurrent writers never lose each other's entries, and a key first
written by one writer (a plugin, or the host) is never overwritten by another: the attempt is
refused and reported in the `MergeReport`. One connection, used from worker threads under a lock;
several processes may share the file (WAL). Transient faults (busy, disk full, I/O) are retried
with backoff within `fault_budget_s`; persistent ones (corrupt, read-only, not a database) raise
`StoreError` naming the file at once.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio

from . import _sqlite_jobs as jobs
from ._faults import FAULT_BUDGET_S, Backoff, StoreError, StoreUnavailable, classify, describe
from ._protocol import (
    HOST_WRITER,
    RESERVED_PREFIXES,
    Job,
    JobState,
    MergeReport,
    NodeAttempt,
    RunSummary,
    WorkflowRun,
    artifact_path,
    to_json,
)
from ._schema import migrate

T = TypeVar("T")
logger = logging.getLogger("plugbox.store")
BUSY_WAIT_S = 5.0  # SQLite's own wait for a lock, per try; longer waits back off in async code


class SQLiteRunStore:
    """The embedded run store (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        fault_budget_s: float = FAULT_BUDGET_S,
        busy_wait_s: float = BUSY_WAIT_S,
    ) -> None:
        self.path = path
        self.fault_budget_s = fault_budget_s
        self.busy_wait_s = busy_wait_s
        self.faults = 0  # transient faults waited out (for tests and metrics)
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
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=self.busy_wait_s
            )

        await self._guarded(connect)
        await self._run(migrate)

    async def aclose(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            if self._db is None:
                raise StoreError(f"run store {self.path} is not open")
            with self._lock:
                return work(self._db)

        return await self._guarded(locked)

    async def _guarded(self, call: Callable[[], T]) -> T:
        """`call()` in a worker thread; transient faults waited out, others named by file."""
        backoff = Backoff(self.fault_budget_s)
        while True:
            try:
                return await anyio.to_thread.run_sync(call)
            except (sqlite3.Error, OSError) as exc:
                reason = classify(exc)
                if reason is None:
                    raise StoreError(f"run store {self.path}: {describe(exc)}") from exc
                delay = backoff.next_delay()
                if delay is None:
                    raise StoreUnavailable(
                        f"run store {self.path}: {describe(exc)} for over {self.fault_budget_s:g} s"
                    ) from exc
                self.faults += 1
                logger.warning("run store %s: %s; retrying in %.2f s", self.path, reason, delay)
                await anyio.sleep(delay)

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
            with jobs.transaction(db):  # read-modify-write: another process may write too
                row = db.execute("SELECT fields FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no run {run_id}")
                merged = {**json.loads(row[0]), **fields}
                db.execute("UPDATE runs SET fields = ? WHERE id = ?", (to_json(merged), run_id))

        await self._run(work)

    # -- logs and annotations -------------------------------------------------------------------

    async def merge_logs(self, run_id: int, entries: dict[str, Any], *, writer: str) -> MergeReport:
        return await self._run(lambda db: _merge(db, run_id, "logs", entries, writer))

    async def merge_annotations(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeReport:
        return await self._run(lambda db: _merge(db, run_id, "annotations", entries, writer))

    async def merge_logs_many(
        self, run_id: int, batches: list[tuple[str, dict[str, Any]]]
    ) -> list[MergeReport]:
        """Several writers' log entries in one transaction (a call's snapshots): all or none."""

        def work(db: sqlite3.Connection) -> list[MergeReport]:
            with jobs.transaction(db):
                return [_merge_rows(db, run_id, "logs", e, w) for w, e in batches]

        return await self._run(work)

    # -- node results and artifacts ---------------------------------------------------------------

    async def recorded_nodes(self, run_id: int) -> dict[str, str]:
        """node id -> status of each node's current attempt group, for recorded nodes."""
        return await self._run(lambda db: jobs.recorded_nodes(db, run_id))

    async def attempt_groups(self, run_id: int) -> dict[str, int]:
        return await self._run(lambda db: jobs.attempt_groups(db, run_id))

    async def record_node_result(
        self,
        run_id: int,
        node_id: str,
        *,
        plugin: str,
        status: str,
        attempts: int,
        error: str | None = None,
    ) -> bool:
        """Record once per (run, node, current group); False when already recorded."""
        return await self._run(
            lambda db: jobs.record_node_result(db, run_id, node_id, plugin, status, attempts, error)
        )

    async def node_history(self, run_id: int) -> list[NodeAttempt]:
        return await self._run(lambda db: jobs.node_history(db, run_id))

    async def put_artifact(
        self, run_id: int, owner: str, name: str, content_type: str, body: bytes
    ) -> None:
        artifact_path(owner, name)  # raises on a path, `..` or a foreign owner name
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, owner, name, content_type, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, owner, name, content_type, body),
            )
        )

    async def get_artifact(self, run_id: int, owner: str, name: str) -> tuple[str, bytes] | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT content_type, body FROM artifacts"
                " WHERE run_id = ? AND owner = ? AND name = ?",
                (run_id, owner, name),
            ).fetchone()
        )
        return (str(row[0]), bytes(row[1])) if row else None

    async def list_artifacts(self, run_id: int) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT owner, name FROM artifacts WHERE run_id = ? ORDER BY owner, name",
                (run_id,),
            ).fetchall()
        )
        # Rows from before namespacing (owner '') list under their bare name.
        return [f"{row[0]}/{row[1]}" if row[0] else str(row[1]) for row in rows]

    async def run_summaries(self, *, limit: int = 50) -> list[RunSummary]:
        return await self._run(lambda db: jobs.run_summaries(db, limit))

    async def check_writable(self) -> None:
        def probe(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")  # the write lock, as a real write takes it
            db.execute("ROLLBACK")

        await self._run(probe)

    # -- jobs -------------------------------------------------------------------------------------

    async def enqueue(self, run_id: int) -> bool:
        return await self._run(lambda db: jobs.enqueue(db, run_id))

    async def claim(
        self, owner: str, *, lease_s: float, max_deaths: int, run_id: int | None = None
    ) -> Job | None:
        return await self._run(lambda db: jobs.claim(db, owner, lease_s, max_deaths, run_id))

    async def renew(self, run_id: int, owner: str, *, lease_s: float) -> bool:
        return await self._run(lambda db: jobs.renew(db, run_id, owner, lease_s))

    async def finish(self, run_id: int, owner: str, state: JobState, error: str | None) -> bool:
        return await self._run(lambda db: jobs.finish(db, run_id, owner, state, error))

    async def release(self, run_id: int, owner: str, *, delay_s: float = 0.0) -> bool:
        return await self._run(lambda db: jobs.release(db, run_id, owner, delay_s))

    async def get_job(self, run_id: int) -> Job | None:
        return await self._run(lambda db: jobs.get_job(db, run_id))

    async def list_jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        return await self._run(lambda db: jobs.list_jobs(db, state, limit))

    async def claimable(self, *, older_than_s: float = 0.0, limit: int = 1000) -> list[Job]:
        return await self._run(lambda db: jobs.claimable(db, older_than_s, limit))

    async def retry(
        self, run_id: int, *, nodes: list[str] | None = None, plugin: str | None = None
    ) -> list[str]:
        return await self._run(lambda db: jobs.retry(db, run_id, nodes, plugin))


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
    with jobs.transaction(db):
        return _merge_rows(db, run_id, section, entries, writer)


def _merge_rows(
    db: sqlite3.Connection, run_id: int, section: str, entries: dict[str, Any], writer: str
) -> MergeReport:
    encoded = {str(key): to_json(value) for key, value in entries.items()}
    report = MergeReport()
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
    return report
