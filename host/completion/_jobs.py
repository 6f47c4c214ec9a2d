"""Completion layer: the durable embedded job queue and its in-process worker pool.

Contract: `enqueue(run_id)` records a job in the run store's SQLite file (a duplicate enqueue is a
no-op). `EmbeddedWorker.run()` claims jobs with a lease, runs `run_integrations` with bounded
concurrency, and marks them done or failed. A job pending — or running under an expired lease —
when a process died is claimed again on the next start; the per-(run, node) records make the
second run deliver only what the first did not record. `drain()` stops claiming and waits for
the jobs in flight.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING

import anyio

from ._orchestrator import CompletionReport, run_integrations
from ._store import SQLiteRunStore

if TYPE_CHECKING:
    from .._host import PluginHost

logger = logging.getLogger("plugbox.jobs")
LEASE_S = 600.0  # longer than any job: all phases with every retry
IDLE_POLL_S = 1.0  # how often an idle worker looks for expired leases
MAX_JOB_ATTEMPTS = 5  # a job that keeps killing its worker is parked as failed


async def enqueue(store: SQLiteRunStore, run_id: int) -> bool:
    """Queue post-call work for a run; False when it was already queued."""

    def work(db: sqlite3.Connection) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO jobs (run_id, state, enqueued_at) VALUES (?, 'pending', ?)",
            (run_id, time.time()),
        )
        return cursor.rowcount == 1

    return await store.execute(work)


async def job_state(store: SQLiteRunStore, run_id: int) -> str | None:
    row = await store.execute(
        lambda db: db.execute("SELECT state FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
    )
    return str(row[0]) if row else None


class EmbeddedWorker:
    """Runs queued jobs in this process, `concurrency` at a time."""

    def __init__(self, store: SQLiteRunStore, plugins: PluginHost, *, concurrency: int = 4) -> None:
        self.store = store
        self.plugins = plugins
        self.concurrency = concurrency
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.completed: list[CompletionReport] = []
        self._wake = anyio.Event()
        self._stopping = False
        self._idle = anyio.Event()
        self.alive = False  # True while `run()` is claiming jobs (`/readyz` reads it)

    def wake(self) -> None:
        self._wake.set()

    async def submit(self, run_id: int) -> None:
        await enqueue(self.store, run_id)
        self.wake()

    async def run(self) -> None:
        """Claim and run jobs until `drain()`."""
        limiter = anyio.Semaphore(self.concurrency)
        await self.recover()
        self.alive = True
        try:
            async with anyio.create_task_group() as group:
                while not self._stopping:
                    await limiter.acquire()
                    run_id = await self._claim()
                    if run_id is None:
                        limiter.release()
                        await self._wait_for_work()
                        continue
                    group.start_soon(self._run_job, run_id, limiter)
        finally:
            self.alive = False
        self._idle.set()

    async def run_until_empty(self) -> None:
        """Run every queued job, then return (for the demo and tests)."""
        await self.recover()
        while (run_id := await self._claim()) is not None:
            await self._run_job(run_id, None)

    async def drain(self) -> None:
        self._stopping = True
        self.wake()
        await self._idle.wait()

    async def _wait_for_work(self) -> None:
        with anyio.move_on_after(IDLE_POLL_S):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _claim(self) -> int | None:
        def work(db: sqlite3.Connection) -> int | None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT run_id FROM jobs WHERE state = 'pending'"
                " OR (state = 'running' AND lease_expires < ?) ORDER BY enqueued_at LIMIT 1",
                (now,),
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,"
                    " attempts = attempts + 1 WHERE run_id = ?",
                    (self.owner, now + LEASE_S, row[0]),
                )
            db.execute("COMMIT")
            return int(row[0]) if row else None

        return await self.store.execute(work)

    async def _run_job(self, run_id: int, limiter: anyio.Semaphore | None) -> None:
        try:
            report = await run_integrations(run_id, plugins=self.plugins, store=self.store)
            self.completed.append(report)
            await self._finish(run_id, "done", None)
        except Exception as exc:  # the job boundary: one broken run never stops the worker
            logger.exception("completion job for run %d failed", run_id)
            await self._finish(run_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            if limiter is not None:
                limiter.release()

    async def _finish(self, run_id: int, state: str, error: str | None) -> None:
        await self.store.execute(
            lambda db: db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, error = ?, lease_owner = NULL"
                " WHERE run_id = ? AND lease_owner = ?",
                (state, time.time(), error, run_id, self.owner),
            )
        )

    async def recover(self) -> int:
        """Return running jobs of dead workers to pending (one embedded worker per store file)."""

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE jobs SET state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END"
                " WHERE state = 'running' AND (lease_expires < ? OR lease_owner NOT LIKE ?)",
                (MAX_JOB_ATTEMPTS, time.time(), f"{os.getpid()}-%"),
            )
            return int(cursor.rowcount)

        return await self.store.execute(work)
