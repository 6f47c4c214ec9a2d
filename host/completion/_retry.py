"""Completion layer: what a failed completion attempt means for the next one.

Contract: `is_deterministic(error)` is True for failures that the same call would meet again
(a malformed request, an unknown method, an error the plugin marked `deterministic`, or
`retryable: false` in the error's data or fields): those are not retried. `circuit_wait(error)`
is how long an open circuit stays open; the orchestrator waits it out instead of spending
attempts on it, within the job's deadline (`CIRCUIT_WAIT_S` when the caller gives none). A
plugin whose spec cannot be loaded fails its nodes with `PluginLoadFailed`; they stay retryable.
"""

from __future__ import annotations

import re

from sdk.protocol import CircuitOpen, PluginError

CIRCUIT_WAIT_S = 120.0  # longest total wait for open circuits in one job, by default
# The wire's own deterministic failures, by JSON-RPC code: parse error, invalid request, method
# not found, invalid params, frame too large (the error classes are the client's to name).
_DETERMINISTIC_CODES = frozenset({-32700, -32600, -32601, -32602, -32010})
_NEXT_TRY = re.compile(r"next try in ([0-9.]+) s")


class PluginLoadFailed(PluginError):
    """The plugin's spec could not be loaded, so none of its nodes could run."""

    code = -32030


def is_deterministic(error: PluginError) -> bool:
    if error.code in _DETERMINISTIC_CODES:
        return True
    if error.data.get("deterministic"):  # the plugin said so (the SDK's deterministic errors)
        return True
    fields = error.data.get("fields")
    marked = fields.get("retryable") if isinstance(fields, dict) else None
    return error.data.get("retryable") is False or marked is False


def circuit_wait(error: CircuitOpen) -> float:
    """Seconds until the circuit lets a trial start through (a little more, to be past it)."""
    value = error.data.get("retry_after_s")
    if not isinstance(value, int | float):
        found = _NEXT_TRY.search(error.message)
        value = float(found.group(1)) if found else 1.0
    return float(value) + 0.05
