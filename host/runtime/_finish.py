"""Live call layer: the call-finish helper — snapshots merged and made durable before completion.

Contract: `finish_call(sessions, gathered_context=..., store=..., run_id=...)` asks every session,
concurrently, for its snapshot (the contract's flat merge into `integration_logs`), each checked on
its own by the plugin's client (strict JSON, size, depth; known secrets masked), and persists it
into the run's logs under the plugin's ownership, so a plugin can never overwrite the host's or
another plugin's keys. A plugin that crashed, timed out or returned something unstorable gets an
error entry `integration_<plugin>`; live delivery figures go under the host-owned `plugbox_live`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio

from sdk.protocol import PluginError

from .._keys import HOST_WRITER, LIVE_KEY, KeyRule, LogStore
from ..client import ResultError, error_entry
from ._sessions import HostRuntimeSession

logger = logging.getLogger("plugbox.runtime")


async def finish_call(
    sessions: list[HostRuntimeSession],
    *,
    gathered_context: dict[str, Any],
    store: LogStore,
    run_id: int,
) -> dict[str, Any]:
    """Collect, check and persist every session's snapshot; return the merged integration logs."""
    outcomes = await _collect(sessions, gathered_context)
    ordered = sorted(sessions, key=lambda s: s.name)
    batches: list[tuple[str, dict[str, Any]]] = []
    refusals: list[list[str]] = []
    for session in ordered:
        entries, status = outcomes[session.name]
        # Error entries are the host's (reserved `integration_` keys); snapshots the plugin's,
        # and only under its own keys: a squatter never blocks the rightful writer.
        writer = HOST_WRITER if status["status"] == "error" else session.name
        not_mine: list[str] = []
        if writer != HOST_WRITER:
            entries, not_mine = (session.keys or KeyRule.build(session.name)).split(entries)
            entries, writer, status = _storable(session.name, entries, writer, status)
        outcomes[session.name] = entries, status
        batches.append((writer, entries))
        refusals.append(not_mine)
    # Every plugin's snapshot in one transaction: a storage fault (a full disk) is waited out
    # by the store and stores all of them or none, never a torn half.
    reports = await store.merge_logs_many(run_id, batches)
    integration_logs: dict[str, Any] = {}
    live: dict[str, Any] = {}
    for session, (_, entries), not_mine, report in zip(
        ordered, batches, refusals, reports, strict=True
    ):
        status = outcomes[session.name][1]
        refused = [*not_mine, *(key for key, _ in report.refused)]
        if refused:
            logger.warning(
                "plugin %r tried to write log keys it does not own: %s", session.name, refused
            )
            status = {**status, "refused_keys": refused}
        integration_logs.update({k: v for k, v in entries.items() if k in report.applied})
        live[session.name] = {**session.delivery(), **status}
    if live:
        await store.merge_logs(run_id, {LIVE_KEY: live}, writer=HOST_WRITER)
    return integration_logs


def _storable(
    name: str, entries: dict[str, Any], writer: str, status: dict[str, Any]
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A snapshot the store cannot encode (not strict JSON) becomes that plugin's error entry
    here, so it can never fail the transaction that carries the other plugins' snapshots."""
    try:
        json.dumps(entries, allow_nan=False)
    except (TypeError, ValueError) as exc:
        error = ResultError(name, f"snapshot is not strict JSON: {exc}")
        logger.error("%s", error)
        entry = error_entry(name, error)
        return (
            {f"integration_{name}": entry},
            HOST_WRITER,
            {"status": "error", "error": "ResultError"},
        )
    return entries, writer, status


async def _collect(
    sessions: list[HostRuntimeSession], gathered_context: dict[str, Any]
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every session's snapshot, asked for concurrently: one slow plugin costs its own deadline,
    not the sum of all of them."""
    outcomes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    async def ask(session: HostRuntimeSession) -> None:
        outcomes[session.name] = await _snapshot_entries(session, gathered_context)

    async with anyio.create_task_group() as group:
        for session in sessions:
            group.start_soon(ask, session)
    return outcomes


async def _snapshot_entries(
    session: HostRuntimeSession, gathered_context: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        snapshot = await session.on_call_finished(gathered_context=gathered_context)
        if snapshot is None:
            return {}, {"status": "ok", "snapshot": False}
    except (PluginError, ResultError) as exc:
        logger.error("plugin %r: no snapshot: %s", session.name, exc)
        entry = error_entry(session.name, exc)
        return {f"integration_{session.name}": entry}, {
            "status": "error",
            "error": type(exc).__name__,
        }
    return snapshot, {"status": "ok", "snapshot": True}
