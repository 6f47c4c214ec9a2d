"""Store layer: the SQLite statements behind jobs and node results (sync, on one connection).

Contract: each function is one transaction on the connection it is given (the caller serialises
access). `claim` takes the oldest claimable job with `BEGIN IMMEDIATE`, so two workers on one file
never take the same job; a running job's lease belongs to one worker instance and only an expired
lease can be taken over, which counts a death and parks the job after `max_deaths`. Node results
are kept per attempt group; `retry` opens a new group for the nodes it names, supersedes the
host's failure annotations for them, and makes the job pending again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._faults import StoreError
from ._protocol import HOST_WRITER, Job, JobState, NodeAttempt, RunSummary

_JOB_COLUMNS = (
    "run_id, state, claims, deaths, lease_owner, lease_expires, enqueued_at, finished_at, error,"
    " not_before"
)
# A pending job is claimable once its deferral (if any) is over.
_DUE = "(state = 'pending' AND COALESCE(not_before, 0) <= ?)"
_CURRENT_GROUP = (
    "COALESCE((SELECT attempt_group FROM node_groups g"
    " WHERE g.run_id = r.run_id AND g.node_id = r.node_id), 0)"
)


class JobRunning(StoreError):
    """A retry asked for a job a live worker is running."""

    code = -32022


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; a failed statement or commit rolls back if still open
    (SQLite may already have rolled back on a full disk: no second error hides the first)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _job(row: tuple[Any, ...]) -> Job:
    return Job(row[0], JobState(row[1]), *row[2:])


def enqueue(db: sqlite3.Connection, run_id: int) -> bool:
    cursor = db.execute(
        "INSERT OR IGNORE INTO jobs (run_id, state, enqueued_at) VALUES (?, 'pending', ?)",
        (run_id, time.time()),
    )
    return cursor.rowcount == 1


def claim(
    db: sqlite3.Connection, owner: str, lease_s: float, max_deaths: int, run_id: int | None
) -> Job | None:
    now = time.time()
    only = "AND run_id = ?" if run_id is not None else ""
    with transaction(db):
        if run_id is not None:  # a run queued elsewhere (Redis) without a job row gets one
            db.execute(
                "INSERT OR IGNORE INTO jobs (run_id, state, enqueued_at) VALUES (?, 'pending', ?)",
                (run_id, now),
            )
        rows = db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE ({_DUE}"
            f" OR (state = 'running' AND lease_expires < ?)) {only}"
            " ORDER BY enqueued_at LIMIT 50",
            (now, now, run_id) if run_id is not None else (now, now),
        ).fetchall()
        for job in map(_job, rows):
            deaths = job.deaths + (job.state is JobState.RUNNING)  # its worker died running it
            if deaths >= max_deaths:
                reason = (
                    f"parked: a worker died {deaths} times while running this job"
                    f" (last lease owner {job.lease_owner})"
                )
                db.execute(
                    "UPDATE jobs SET state = 'parked', deaths = ?, error = ?, finished_at = ?,"
                    " lease_owner = NULL, lease_expires = NULL WHERE run_id = ?",
                    (deaths, reason, now, job.run_id),
                )
                continue
            db.execute(
                "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,"
                " claims = claims + 1, deaths = ?, not_before = NULL WHERE run_id = ?",
                (owner, now + lease_s, deaths, job.run_id),
            )
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_id = ?", (job.run_id,))
            return _job(row.fetchone())
    return None


def renew(db: sqlite3.Connection, run_id: int, owner: str, lease_s: float) -> bool:
    cursor = db.execute(
        "UPDATE jobs SET lease_expires = ? WHERE run_id = ? AND lease_owner = ?"
        " AND state = 'running'",
        (time.time() + lease_s, run_id, owner),
    )
    return cursor.rowcount == 1


def finish(
    db: sqlite3.Connection, run_id: int, owner: str, state: JobState, error: str | None
) -> bool:
    cursor = db.execute(
        "UPDATE jobs SET state = ?, finished_at = ?, error = ?, lease_owner = NULL,"
        " lease_expires = NULL WHERE run_id = ? AND lease_owner = ? AND state = 'running'",
        (state.value, time.time(), error, run_id, owner),
    )
    return cursor.rowcount == 1


def release(db: sqlite3.Connection, run_id: int, owner: str, delay_s: float) -> bool:
    not_before = time.time() + delay_s if delay_s > 0 else None
    cursor = db.execute(
        "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires = NULL,"
        " not_before = ? WHERE run_id = ? AND lease_owner = ? AND state = 'running'",
        (not_before, run_id, owner),
    )
    return cursor.rowcount == 1


def get_job(db: sqlite3.Connection, run_id: int) -> Job | None:
    row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
    return _job(row) if row else None


def list_jobs(db: sqlite3.Connection, state: JobState | None, limit: int) -> list[Job]:
    where, args = ("WHERE state = ?", (state.value, limit)) if state else ("", (limit,))
    rows = db.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY run_id DESC LIMIT ?", args
    ).fetchall()
    return [_job(row) for row in rows]


def claimable(db: sqlite3.Connection, older_than_s: float, limit: int) -> list[Job]:
    now = time.time()
    rows = db.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE ({_DUE} AND enqueued_at < ?)"
        " OR (state = 'running' AND lease_expires < ?) ORDER BY enqueued_at LIMIT ?",
        (now, now - older_than_s, now, limit),
    ).fetchall()
    return [_job(row) for row in rows]


# -- node results --------------------------------------------------------------------------------


def recorded_nodes(db: sqlite3.Connection, run_id: int) -> dict[str, str]:
    rows = db.execute(
        f"SELECT node_id, status FROM node_results r WHERE run_id = ?"
        f" AND attempt_group = {_CURRENT_GROUP}",
        (run_id,),
    ).fetchall()
    return {str(node): str(status) for node, status in rows}


def attempt_groups(db: sqlite3.Connection, run_id: int) -> dict[str, int]:
    rows = db.execute(
        "SELECT node_id, attempt_group FROM node_groups WHERE run_id = ?", (run_id,)
    ).fetchall()
    return {str(node): int(group) for node, group in rows}


def record_node_result(
    db: sqlite3.Connection,
    run_id: int,
    node_id: str,
    plugin: str,
    status: str,
    attempts: int,
    error: str | None,
) -> bool:
    cursor = db.execute(
        "INSERT OR IGNORE INTO node_results"
        " (run_id, node_id, attempt_group, plugin, status, attempts, error, recorded_at)"
        " VALUES (?, ?, COALESCE((SELECT attempt_group FROM node_groups"
        " WHERE run_id = ? AND node_id = ?), 0), ?, ?, ?, ?, ?)",
        (run_id, node_id, run_id, node_id, plugin, status, attempts, error, time.time()),
    )
    return cursor.rowcount == 1


def node_history(db: sqlite3.Connection, run_id: int) -> list[NodeAttempt]:
    rows = db.execute(
        "SELECT run_id, node_id, attempt_group, plugin, status, attempts, error, recorded_at"
        " FROM node_results WHERE run_id = ? ORDER BY node_id, attempt_group",
        (run_id,),
    ).fetchall()
    return [NodeAttempt(*row) for row in rows]


def run_summaries(db: sqlite3.Connection, limit: int) -> list[RunSummary]:
    rows = db.execute(
        "SELECT x.id, x.created_at, COALESCE(SUM(r.status = 'done'), 0),"
        " COALESCE(SUM(r.status = 'failed'), 0), COUNT(r.node_id)"
        " FROM (SELECT id, created_at FROM runs ORDER BY id DESC LIMIT ?) x"
        " LEFT JOIN node_results r ON r.run_id = x.id"
        f" AND r.attempt_group = {_CURRENT_GROUP}"
        " GROUP BY x.id ORDER BY x.id DESC",
        (limit,),
    ).fetchall()
    return [RunSummary(int(a), float(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]


def retry(
    db: sqlite3.Connection, run_id: int, nodes: list[str] | None, plugin: str | None
) -> list[str]:
    with transaction(db):
        _refuse_while_running(db, run_id)
        picked = _current_results_chosen(db, run_id, chosen_for_retry(nodes, plugin))
        again = sorted(node for node, _ in picked)
        for owner in {owner for _, owner in picked}:  # the reference's per-plugin failure entry
            _forget_host_annotation(db, run_id, f"integration_{owner}")
        for node in again:
            _open_next_attempt_group(db, run_id, node)
            # The host's failure record for the node gives way to the next attempt's result.
            _forget_host_annotation(db, run_id, node)
        _make_pending_again(db, run_id)
    return again


def chosen_for_retry(
    nodes: list[str] | None, plugin: str | None
) -> Callable[[str, str, str], bool]:
    """Which current results (node, plugin, status) a retry reopens: the nodes named, else the
    plugin's, else the failed ones. Shared by both backends."""
    if nodes is not None:
        return lambda node, _p, _s: node in nodes
    if plugin is not None:
        return lambda _n, owner, _s: owner == plugin
    return lambda _n, _p, status: status == "failed"


def _refuse_while_running(db: sqlite3.Connection, run_id: int) -> None:
    """Raises `JobRunning` while a live worker holds the job's lease."""
    row = db.execute(
        "SELECT lease_owner FROM jobs WHERE run_id = ? AND state = 'running'"
        " AND lease_expires >= ?",
        (run_id, time.time()),
    ).fetchone()
    if row is not None:
        raise JobRunning(f"run {run_id} is running now (lease owner {row[0]}); retry later")


def _current_results_chosen(
    db: sqlite3.Connection, run_id: int, chosen: Callable[[str, str, str], bool]
) -> list[tuple[str, str]]:
    """(node, plugin) of each of the run's current results that `chosen` picks."""
    current = db.execute(
        f"SELECT node_id, plugin, status FROM node_results r WHERE run_id = ?"
        f" AND attempt_group = {_CURRENT_GROUP}",
        (run_id,),
    ).fetchall()
    return [(str(n), str(o)) for n, o, status in current if chosen(n, o, status)]


def _forget_host_annotation(db: sqlite3.Connection, run_id: int, key: str) -> None:
    db.execute(
        "DELETE FROM entries WHERE run_id = ? AND section = 'annotations' AND key = ?"
        " AND owner = ?",
        (run_id, key, HOST_WRITER),
    )


def _open_next_attempt_group(db: sqlite3.Connection, run_id: int, node: str) -> None:
    db.execute(
        "INSERT INTO node_groups (run_id, node_id, attempt_group) VALUES (?, ?, 1)"
        " ON CONFLICT (run_id, node_id) DO UPDATE SET attempt_group = attempt_group + 1",
        (run_id, node),
    )


def _make_pending_again(db: sqlite3.Connection, run_id: int) -> None:
    """The job (created if missing) is pending with a clean slate: no deaths, error or lease."""
    db.execute(
        "INSERT INTO jobs (run_id, state, enqueued_at) VALUES (?, 'pending', ?)"
        " ON CONFLICT (run_id) DO UPDATE SET state = 'pending', deaths = 0, error = NULL,"
        " finished_at = NULL, lease_owner = NULL, lease_expires = NULL, not_before = NULL",
        (run_id, time.time()),
    )
