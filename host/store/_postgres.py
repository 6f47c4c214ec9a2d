"""Store layer: the networked run store — the contract's `workflow_run` in PostgreSQL, for
workers on many machines that share nothing but the database and Redis.

Contract: implements `RunStore` with the SQLite backend's semantics (`_sqlite`, `_sqlite_jobs`):
runs with their pinned definition, fields and public token; `logs` and `annotations` one row per
key, merged atomically per key by an upsert that only its first writer may update, so concurrent
writers on any machine never lose each other's entries nor overwrite another's key (refusals are
reported in the `MergeReport`); artifacts; node results per attempt group; jobs under leases
(`_pg_jobs`). Every method is one short transaction on a pooled connection. Transient faults
(connection lost, server restarting, serialization failure, disk full) are retried with backoff
within `fault_budget_s`, on a fresh connection; persistent ones raise `StoreError` naming the
database (never its password). A call retried after a connection died mid-commit may have taken
effect once already: every write but `create_run` is idempotent or guarded by its owner.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import anyio
import psycopg

from . import _pg_jobs as jobs
from ._faults import FAULT_BUDGET_S, Backoff, StoreError, StoreUnavailable
from ._pg_conn import PgTarget, Pool, classify, describe
from ._pg_jobs import NOW, Conn
from ._pg_schema import migrate
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

T = TypeVar("T")
logger = logging.getLogger("plugbox.store")
POOL_SIZE = 8  # connections per process: a worker's jobs and their heartbeats share them
CONNECT_BUDGET_S = 15.0  # `open()` gives up on an unreachable server after this


class PostgresRunStore:
    """The networked run store (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        fault_budget_s: float = FAULT_BUDGET_S,
        pool_size: int = POOL_SIZE,
        connect_budget_s: float = CONNECT_BUDGET_S,
    ) -> None:
        self.target = PgTarget.parse(url, schema)
        self.fault_budget_s = fault_budget_s
        self.connect_budget_s = connect_budget_s
        self.faults = 0  # transient faults waited out (for tests and metrics)
        self._pool = Pool(self.target, pool_size, connect_timeout_s=connect_budget_s)
        self._opened = False

    @property
    def schema(self) -> str:
        return self.target.schema

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.target})"

    async def __aenter__(self) -> PostgresRunStore:
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
        self._opened = True
        await self._run(lambda conn: migrate(conn, self.schema, str(self.target)), opening=True)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def _run(self, work: Callable[[Conn], Awaitable[T]], *, opening: bool = False) -> T:
        """`work(connection)` on a pooled connection; transient faults waited out (on a new
        connection), others raised as `StoreError` naming the database."""
        if not self._opened:
            raise StoreError(f"run store {self.target} is not open")
        budget = min(self.fault_budget_s, self.connect_budget_s) if opening else self.fault_budget_s
        backoff = Backoff(budget)
        while True:
            try:
                async with self._pool.connection() as conn:
                    return await work(conn)
            except (psycopg.Error, OSError) as exc:
                reason = classify(exc)
                if reason is None:
                    raise StoreError(f"run store {self.target}: {describe(exc)}") from exc
                delay = backoff.next_delay()
                if delay is None:
                    raise StoreUnavailable(
                        f"run store {self.target}: {describe(exc)} for over {budget:g} s"
                    ) from exc
                self.faults += 1
                logger.warning("run store %s: %s; retrying in %.2f s", self.target, reason, delay)
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
        params = (
            organization_id,
            definition_id,
            to_json(workflow_definition),
            to_json(fields or {}),
        )

        async def work(conn: Conn) -> int:
            cursor = await conn.execute(
                "INSERT INTO runs"
                " (organization_id, definition_id, workflow_definition, created_at, fields)"
                f" VALUES (%s, %s, %s, {NOW}, %s) RETURNING id",
                params,
            )
            row = await cursor.fetchone()
            assert row is not None  # RETURNING always gives the new row
            return int(row[0])

        run_id = await self._run(work)
        if logs:
            await self.merge_logs(run_id, logs, writer=HOST_WRITER)
        return run_id

    async def get_run(self, run_id: int) -> WorkflowRun | None:
        return await self._run(lambda conn: _load_run(conn, run_id))

    async def get_run_by_token(self, token: str) -> WorkflowRun | None:
        async def work(conn: Conn) -> WorkflowRun | None:
            cursor = await conn.execute(
                "SELECT id, public_token FROM runs WHERE public_token = %s", (token,)
            )
            row = await cursor.fetchone()
            if row is None or not hmac.compare_digest(str(row[1]).encode(), token.encode()):
                return None
            return await _load_run(conn, int(row[0]))

        return await self._run(work)

    async def ensure_public_token(self, run_id: int) -> str:
        async def work(conn: Conn) -> str:
            await conn.execute(
                "UPDATE runs SET public_token = %s WHERE id = %s AND public_token IS NULL",
                (secrets.token_urlsafe(32), run_id),
            )
            cursor = await conn.execute("SELECT public_token FROM runs WHERE id = %s", (run_id,))
            row = await cursor.fetchone()
            if row is None:
                raise KeyError(f"no run {run_id}")
            return str(row[0])

        return await self._run(work)

    async def update_fields(self, run_id: int, fields: dict[str, Any]) -> None:
        """Merge run fields known only later (`usage_info`, `recording_url`) into the run."""

        async def work(conn: Conn) -> None:
            async with conn.transaction():  # read-modify-write: the row lock orders writers
                cursor = await conn.execute(
                    "SELECT fields FROM runs WHERE id = %s FOR UPDATE", (run_id,)
                )
                row = await cursor.fetchone()
                if row is None:
                    raise KeyError(f"no run {run_id}")
                merged = to_json({**json.loads(row[0]), **fields})
                await conn.execute("UPDATE runs SET fields = %s WHERE id = %s", (merged, run_id))

        await self._run(work)

    # -- logs and annotations -------------------------------------------------------------------

    async def merge_logs(self, run_id: int, entries: dict[str, Any], *, writer: str) -> MergeReport:
        return await self._run(lambda conn: _merge(conn, run_id, "logs", entries, writer))

    async def merge_annotations(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeReport:
        return await self._run(lambda conn: _merge(conn, run_id, "annotations", entries, writer))

    async def merge_logs_many(
        self, run_id: int, batches: list[tuple[str, dict[str, Any]]]
    ) -> list[MergeReport]:
        """Several writers' log entries in one transaction (a call's snapshots): all or none."""

        async def work(conn: Conn) -> list[MergeReport]:
            async with conn.transaction():
                return [await _merge_rows(conn, run_id, "logs", e, w) for w, e in batches]

        return await self._run(work)

    # -- node results and artifacts ---------------------------------------------------------------

    async def recorded_nodes(self, run_id: int) -> dict[str, str]:
        """node id -> status of each node's current attempt group, for recorded nodes."""
        return await self._run(lambda conn: jobs.recorded_nodes(conn, run_id))

    async def attempt_groups(self, run_id: int) -> dict[str, int]:
        return await self._run(lambda conn: jobs.attempt_groups(conn, run_id))

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
            lambda conn: jobs.record_node_result(
                conn, run_id, node_id, plugin, status, attempts, error
            )
        )

    async def node_history(self, run_id: int) -> list[NodeAttempt]:
        return await self._run(lambda conn: jobs.node_history(conn, run_id))

    async def put_artifact(
        self, run_id: int, owner: str, name: str, content_type: str, body: bytes
    ) -> None:
        artifact_path(owner, name)  # raises on a path, `..` or a foreign owner name

        async def work(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO artifacts (run_id, owner, name, content_type, body)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, owner, name)"
                " DO UPDATE SET content_type = excluded.content_type, body = excluded.body",
                (run_id, owner, name, content_type, body),
            )

        await self._run(work)

    async def get_artifact(self, run_id: int, owner: str, name: str) -> tuple[str, bytes] | None:
        async def work(conn: Conn) -> tuple[str, bytes] | None:
            cursor = await conn.execute(
                "SELECT content_type, body FROM artifacts"
                " WHERE run_id = %s AND owner = %s AND name = %s",
                (run_id, owner, name),
            )
            row = await cursor.fetchone()
            return (str(row[0]), bytes(row[1])) if row else None

        return await self._run(work)

    async def list_artifacts(self, run_id: int) -> list[str]:
        async def work(conn: Conn) -> list[str]:
            cursor = await conn.execute(
                "SELECT owner, name FROM artifacts WHERE run_id = %s ORDER BY owner, name",
                (run_id,),
            )
            return [f"{owner}/{name}" for owner, name in await cursor.fetchall()]

        return await self._run(work)

    async def run_summaries(self, *, limit: int = 50) -> list[RunSummary]:
        return await self._run(lambda conn: jobs.run_summaries(conn, limit))

    async def check_writable(self) -> None:
        """A row lock taken and given up: fails on a read-only server (a standby) or a schema
        being migrated past `fault_budget_s`, as a write would."""

        async def probe(conn: Conn) -> None:
            async with conn.transaction(force_rollback=True):
                await conn.execute("SELECT version FROM plugbox_schema_version FOR UPDATE")

        await self._run(probe)

    # -- jobs -------------------------------------------------------------------------------------

    async def enqueue(self, run_id: int) -> bool:
        return await self._run(lambda conn: jobs.enqueue(conn, run_id))

    async def claim(
        self, owner: str, *, lease_s: float, max_deaths: int, run_id: int | None = None
    ) -> Job | None:
        return await self._run(lambda conn: jobs.claim(conn, owner, lease_s, max_deaths, run_id))

    async def renew(self, run_id: int, owner: str, *, lease_s: float) -> bool:
        return await self._run(lambda conn: jobs.renew(conn, run_id, owner, lease_s))

    async def finish(self, run_id: int, owner: str, state: JobState, error: str | None) -> bool:
        return await self._run(lambda conn: jobs.finish(conn, run_id, owner, state, error))

    async def release(self, run_id: int, owner: str, *, delay_s: float = 0.0) -> bool:
        return await self._run(lambda conn: jobs.release(conn, run_id, owner, delay_s))

    async def get_job(self, run_id: int) -> Job | None:
        return await self._run(lambda conn: jobs.get_job(conn, run_id))

    async def list_jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        return await self._run(lambda conn: jobs.list_jobs(conn, state, limit))

    async def claimable(self, *, older_than_s: float = 0.0, limit: int = 1000) -> list[Job]:
        return await self._run(lambda conn: jobs.claimable(conn, older_than_s, limit))

    async def retry(
        self, run_id: int, *, nodes: list[str] | None = None, plugin: str | None = None
    ) -> list[str]:
        return await self._run(lambda conn: jobs.retry(conn, run_id, nodes, plugin))


async def _load_run(conn: Conn, run_id: int) -> WorkflowRun | None:
    cursor = await conn.execute(
        "SELECT id, workflow_definition, definition_id, organization_id, public_token, created_at,"
        " fields FROM runs WHERE id = %s",
        (run_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    sections: dict[str, dict[str, Any]] = {"logs": {}, "annotations": {}}
    cursor = await conn.execute(
        "SELECT section, key, value FROM entries WHERE run_id = %s ORDER BY seq", (run_id,)
    )
    for section, key, text in await cursor.fetchall():
        sections[section][key] = json.loads(text)
    return WorkflowRun(
        id=int(row[0]),
        workflow_definition=json.loads(row[1]),
        definition_id=row[2],
        organization_id=row[3],
        public_token=row[4],
        logs=sections["logs"],
        annotations=sections["annotations"],
        created_at=row[5],
        fields=json.loads(row[6]),
    )


async def _merge(
    conn: Conn, run_id: int, section: str, entries: dict[str, Any], writer: str
) -> MergeReport:
    async with conn.transaction():
        return await _merge_rows(conn, run_id, section, entries, writer)


async def _merge_rows(
    conn: Conn, run_id: int, section: str, entries: dict[str, Any], writer: str
) -> MergeReport:
    encoded = {str(key): to_json(value) for key, value in entries.items()}
    report = MergeReport()
    for key, text in encoded.items():
        if writer != HOST_WRITER and key.startswith(RESERVED_PREFIXES):
            report.refused.append((key, HOST_WRITER))
            continue
        # One statement decides: a new key is the writer's; an existing one is updated only by
        # its owner, so two machines racing on a key cannot both think they own it.
        cursor = await conn.execute(
            "INSERT INTO entries (run_id, section, key, owner, value) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, section, key) DO UPDATE SET value = excluded.value"
            " WHERE entries.owner = excluded.owner RETURNING owner",
            (run_id, section, key, writer, text),
        )
        if await cursor.fetchone() is not None:
            report.applied.append(key)
            continue
        cursor = await conn.execute(
            "SELECT owner FROM entries WHERE run_id = %s AND section = %s AND key = %s",
            (run_id, section, key),
        )
        row = await cursor.fetchone()
        report.refused.append((key, str(row[0]) if row else "?"))
    return report
