"""Live call layer: the call-finish helper — snapshots merged and made durable before completion.

Contract: `finish_call(sessions, gathered_context=..., store=..., run_id=...)` asks every session,
concurrently, for its snapshot (the contract's flat merge into `integration_logs`), checks each one
on its own (strict JSON, size), masks known secrets in it, and persists it into the run's logs under
the plugin's ownership, so a plugin can never overwrite the host's or another plugin's keys. A
plugin that crashed, timed out or returned something unstorable gets an error entry
`integration_<plugin>`; live delivery figures go under the host-owned key `plugbox_live`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from sdk.protocol import PluginError

from .._redaction import SecretScrubber
from ..completion import HOST_WRITER, ResultError, SQLiteRunStore, check_result, error_entry
from ._sessions import HostRuntimeSession

logger = logging.getLogger("plugbox.runtime")
LIVE_KEY = "plugbox_live"


async def finish_call(
    sessions: list[HostRuntimeSession],
    *,
    gathered_context: dict[str, Any],
    store: SQLiteRunStore,
    run_id: int,
    scrubber: SecretScrubber | None = None,
) -> dict[str, Any]:
    """Collect, check and persist every session's snapshot; return the merged integration logs."""
    scrubber = scrubber or (sessions[0].scrubber if sessions else SecretScrubber())
    integration_logs: dict[str, Any] = {}
    live: dict[str, Any] = {}
    outcomes = await _collect(sessions, gathered_context, scrubber)
    for session in sorted(sessions, key=lambda s: s.name):
        entries, status = outcomes[session.name]
        # Error entries are the host's (reserved `integration_` keys); snapshots the plugin's.
        writer = HOST_WRITER if status["status"] == "error" else session.name
        report = await store.merge_logs(run_id, entries, writer=writer) if entries else None
        if report and report.refused:
            logger.warning(
                "plugin %r tried to overwrite log keys it does not own: %s",
                session.name,
                report.refused,
            )
            status = {**status, "refused_keys": [key for key, _ in report.refused]}
        integration_logs.update(
            {k: v for k, v in entries.items() if report and k in report.applied}
        )
        live[session.name] = {**session.delivery(), **status}
    if live:
        await store.merge_logs(run_id, {LIVE_KEY: live}, writer=HOST_WRITER)
    return integration_logs


async def _collect(
    sessions: list[HostRuntimeSession], gathered_context: dict[str, Any], scrubber: SecretScrubber
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every session's snapshot, asked for concurrently: one slow plugin costs its own deadline,
    not the sum of all of them."""
    outcomes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    async def ask(session: HostRuntimeSession) -> None:
        outcomes[session.name] = await _snapshot_entries(session, gathered_context, scrubber)

    async with anyio.create_task_group() as group:
        for session in sessions:
            group.start_soon(ask, session)
    return outcomes


async def _snapshot_entries(
    session: HostRuntimeSession, gathered_context: dict[str, Any], scrubber: SecretScrubber
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        snapshot = await session.on_call_finished(gathered_context=gathered_context)
        if snapshot is None:
            return {}, {"status": "ok", "snapshot": False}
        checked = check_result(session.name, snapshot)
    except (PluginError, ResultError) as exc:
        logger.error("plugin %r: no snapshot: %s", session.name, exc)
        entry = error_entry(session.name, exc)
        entry["message"] = scrubber.scrub_text(entry["message"])
        return {f"integration_{session.name}": entry}, {
            "status": "error",
            "error": type(exc).__name__,
        }
    return scrubber.scrub(checked), {"status": "ok", "snapshot": True}
