"""Store layer: the PostgreSQL statements behind jobs and node results (one connection each).

Contract: the same semantics as `_sqlite_jobs`, for workers on many machines. `claim` locks the
oldest claimable rows with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent workers never wait
on, or take, the same job; a running job's lease belongs to one worker instance and only an
expired lease can be taken over, which counts a death and parks the job after `max_deaths`.
Times (leases, enqueue and finish times) come from the database's clock, so workers whose
clocks disagree still agree on when a lease expired. Node results are kept per attempt group;
`retry` locks the job row, opens a new group for the nodes it names, supersedes the host's
failure annotations for them and makes the job pending again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from ._protocol import HOST_WRITER, Job, JobState, NodeAttempt, RunSummary
from ._sqlite_jobs import JobRunning, chosen_for_retry

Conn = psycopg.AsyncConnection[Any]
NOW = "extract(epoch FROM clock_timestamp())"
_JOB_COLUMNS = (
    "run_id, state, claims, deaths, lease_owner, lease_expires, enqueued_at, finished_at, error,"
    " not_before"
)
# A pending job is claimable once its deferral (if any) is over.
_DUE = f"(state = 'pending' AND COALESCE(not_before, 0) <= {NOW})"
_CURRENT_GROUP = (
    "COALESCE((SELECT attempt_group FROM node_groups g"
    " WHERE g.run_id = r.run_id AND g.node_id = r.node_id), 0)"
)


def _job(row: tuple[Any, ...]) -> Job:
    return Job(int(row[0]), JobState(row[1]), *row[2:])


async def _rows(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(query, params)
    return await cursor.fetchall()


async def _count(conn: Conn, query: str, params: tuple[Any, ...]) -> int:
    cursor = await conn.execute(query, params)
    return cursor.rowcount


async def enqueue(conn: Conn, run_id: int) -> bool:
    query = (
        f"INSERT INTO jobs (run_id, state, enqueued_at) VALUES (%s, 'pending', {NOW})"
        " ON CONFLICT (run_id) DO NOTHING"
    )
    return await _count(conn, query, (run_id,)) == 1


async def claim(
    conn: Conn, owner: str, lease_s: float, max_deaths: int, run_id: int | None
) -> Job | None:
    only = "AND run_id = %s" if run_id is not None else ""
    query = (
        f"SELECT {_JOB_COLUMNS}, {NOW} FROM jobs WHERE ({_DUE}"
        f" OR (state = 'running' AND lease_expires < {NOW})) {only}"
        # One row at a time: a lock on more rows than this claim takes would hide them from
        # every other worker (SKIP LOCKED) until this transaction ends.
        " ORDER BY enqueued_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    async with conn.transaction():
        if run_id is not None:  # a run queued elsewhere (Redis) without a job row gets one
            await enqueue(conn, run_id)
        while rows := await _rows(conn, query, (run_id,) if run_id is not None else ()):
            job, now = _job(rows[0][:-1]), float(rows[0][-1])
            deaths = job.deaths + (job.state is JobState.RUNNING)  # its worker died running it
            if deaths >= max_deaths:
                reason = (
                    f"parked: a worker died {deaths} times while running this job"
                    f" (last lease owner {job.lease_owner})"
                )
                await conn.execute(
                    "UPDATE jobs SET state = 'parked', deaths = %s, error = %s, finished_at = %s,"
                    " lease_owner = NULL, lease_expires = NULL WHERE run_id = %s",
                    (deaths, reason, now, job.run_id),
                )
                continue
            claimed = await _rows(
                conn,
                f"UPDATE jobs SET state = 'running', lease_owner = %s, lease_expires = {NOW} + %s,"
                " claims = claims + 1, deaths = %s, not_before = NULL WHERE run_id = %s"
                f" RETURNING {_JOB_COLUMNS}",
                (owner, lease_s, deaths, job.run_id),
            )
            return _job(claimed[0])
    return None


async def renew(conn: Conn, run_id: int, owner: str, lease_s: float) -> bool:
    query = (
        f"UPDATE jobs SET lease_expires = {NOW} + %s WHERE run_id = %s AND lease_owner = %s"
        " AND state = 'running'"
    )
    return await _count(conn, query, (lease_s, run_id, owner)) == 1


async def finish(conn: Conn, run_id: int, owner: str, state: JobState, error: str | None) -> bool:
    query = (
        f"UPDATE jobs SET state = %s, finished_at = {NOW}, error = %s, lease_owner = NULL,"
        " lease_expires = NULL WHERE run_id = %s AND lease_owner = %s AND state = 'running'"
    )
    return await _count(conn, query, (state.value, error, run_id, owner)) == 1


async def release(conn: Conn, run_id: int, owner: str, delay_s: float) -> bool:
    query = (
        "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires = NULL,"
        f" not_before = CASE WHEN %s > 0 THEN {NOW} + %s END"
        " WHERE run_id = %s AND lease_owner = %s AND state = 'running'"
    )
    return await _count(conn, query, (delay_s, delay_s, run_id, owner)) == 1


async def get_job(conn: Conn, run_id: int) -> Job | None:
    rows = await _rows(conn, f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_id = %s", (run_id,))
    return _job(rows[0]) if rows else None


async def list_jobs(conn: Conn, state: JobState | None, limit: int) -> list[Job]:
    where, args = ("WHERE state = %s", (state.value, limit)) if state else ("", (limit,))
    query = f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY run_id DESC LIMIT %s"
    return [_job(row) for row in await _rows(conn, query, args)]


async def claimable(conn: Conn, older_than_s: float, limit: int) -> list[Job]:
    query = (
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE ({_DUE} AND enqueued_at < {NOW} - %s)"
        f" OR (state = 'running' AND lease_expires < {NOW}) ORDER BY enqueued_at LIMIT %s"
    )
    return [_job(row) for row in await _rows(conn, query, (older_than_s, limit))]


# -- node results --------------------------------------------------------------------------------


async def recorded_nodes(conn: Conn, run_id: int) -> dict[str, str]:
    query = (
        f"SELECT node_id, status FROM node_results r WHERE run_id = %s"
        f" AND attempt_group = {_CURRENT_GROUP}"
    )
    return {str(node): str(status) for node, status in await _rows(conn, query, (run_id,))}


async def attempt_groups(conn: Conn, run_id: int) -> dict[str, int]:
    query = "SELECT node_id, attempt_group FROM node_groups WHERE run_id = %s"
    return {str(node): int(group) for node, group in await _rows(conn, query, (run_id,))}


async def record_node_result(
    conn: Conn,
    run_id: int,
    node_id: str,
    plugin: str,
    status: str,
    attempts: int,
    error: str | None,
) -> bool:
    query = (
        "INSERT INTO node_results"
        " (run_id, node_id, attempt_group, plugin, status, attempts, error, recorded_at)"
        " VALUES (%s, %s, COALESCE((SELECT attempt_group FROM node_groups"
        f" WHERE run_id = %s AND node_id = %s), 0), %s, %s, %s, %s, {NOW})"
        " ON CONFLICT DO NOTHING"
    )
    params = (run_id, node_id, run_id, node_id, plugin, status, attempts, error)
    return await _count(conn, query, params) == 1


async def node_history(conn: Conn, run_id: int) -> list[NodeAttempt]:
    query = (
        "SELECT run_id, node_id, attempt_group, plugin, status, attempts, error, recorded_at"
        " FROM node_results WHERE run_id = %s ORDER BY node_id, attempt_group"
    )
    return [NodeAttempt(*row) for row in await _rows(conn, query, (run_id,))]


async def run_summaries(conn: Conn, limit: int) -> list[RunSummary]:
    query = (
        "SELECT x.id, x.created_at, COUNT(*) FILTER (WHERE r.status = 'done'),"
        " COUNT(*) FILTER (WHERE r.status = 'failed'), COUNT(r.node_id)"
        " FROM (SELECT id, created_at FROM runs ORDER BY id DESC LIMIT %s) x"
        " LEFT JOIN node_results r ON r.run_id = x.id"
        f" AND r.attempt_group = {_CURRENT_GROUP}"
        " GROUP BY x.id, x.created_at ORDER BY x.id DESC"
    )
    rows = await _rows(conn, query, (limit,))
    return [RunSummary(int(a), float(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]


async def retry(conn: Conn, run_id: int, nodes: list[str] | None, plugin: str | None) -> list[str]:
    async with conn.transaction():
        await _refuse_while_running(conn, run_id)
        picked = await _current_results_chosen(conn, run_id, chosen_for_retry(nodes, plugin))
        again = sorted(node for node, _ in picked)
        for owner in sorted({owner for _, owner in picked}):  # the per-plugin failure entry
            await _forget_host_annotation(conn, run_id, f"integration_{owner}")
        for node in again:
            await _open_next_attempt_group(conn, run_id, node)
            # The host's failure record for the node gives way to the next attempt's result.
            await _forget_host_annotation(conn, run_id, node)
        await _make_pending_again(conn, run_id)
    return again


async def _refuse_while_running(conn: Conn, run_id: int) -> None:
    """Raises `JobRunning` while a live worker holds the job's lease."""
    # The job row's lock keeps a claim from starting the job halfway through this retry.
    live = await _rows(
        conn,
        f"SELECT lease_owner, state = 'running' AND lease_expires >= {NOW} FROM jobs"
        " WHERE run_id = %s FOR UPDATE",
        (run_id,),
    )
    if live and live[0][1]:
        raise JobRunning(f"run {run_id} is running now (lease owner {live[0][0]}); retry later")


async def _current_results_chosen(
    conn: Conn, run_id: int, chosen: Callable[[str, str, str], bool]
) -> list[tuple[str, str]]:
    """(node, plugin) of each of the run's current results that `chosen` picks."""
    current = await _rows(
        conn,
        f"SELECT node_id, plugin, status FROM node_results r WHERE run_id = %s"
        f" AND attempt_group = {_CURRENT_GROUP}",
        (run_id,),
    )
    return [(str(n), str(o)) for n, o, status in current if chosen(n, o, status)]


async def _forget_host_annotation(conn: Conn, run_id: int, key: str) -> None:
    await conn.execute(
        "DELETE FROM entries WHERE run_id = %s AND section = 'annotations' AND key = %s"
        " AND owner = %s",
        (run_id, key, HOST_WRITER),
    )


async def _open_next_attempt_group(conn: Conn, run_id: int, node: str) -> None:
    await conn.execute(
        "INSERT INTO node_groups (run_id, node_id, attempt_group) VALUES (%s, %s, 1)"
        " ON CONFLICT (run_id, node_id)"
        " DO UPDATE SET attempt_group = node_groups.attempt_group + 1",
        (run_id, node),
    )


async def _make_pending_again(conn: Conn, run_id: int) -> None:
    """The job (created if missing) is pending with a clean slate: no deaths, error or lease."""
    await conn.execute(
        f"INSERT INTO jobs (run_id, state, enqueued_at) VALUES (%s, 'pending', {NOW})"
        " ON CONFLICT (run_id) DO UPDATE SET state = 'pending', deaths = 0, error = NULL,"
        " finished_at = NULL, lease_owner = NULL, lease_expires = NULL, not_before = NULL",
        (run_id,),
    )
