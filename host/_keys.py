"""Ownership layer: the keys of a run's logs and annotations that belong to the host.

Contract: `HOST_WRITER` is the writer name of host-owned keys; keys starting with one of
`RESERVED_PREFIXES` may only be written by the host, whoever comes first (its live-delivery
figures under `LIVE_KEY` and the error entries it records as `integration_<plugin>`). `LogStore`
is what the live-call layer needs of a run store: an ownership-checked merge into a run's logs.
Leaf module: the run store, runtime and completion all read these names from here.
"""

from __future__ import annotations

from typing import Any, Protocol

HOST_WRITER = "host"
RESERVED_PREFIXES = ("plugbox_", "integration_")
LIVE_KEY = "plugbox_live"


class MergeOutcome(Protocol):
    """What a merge reports: keys written, and keys refused with their owner."""

    @property
    def applied(self) -> list[str]: ...
    @property
    def refused(self) -> list[tuple[str, str]]: ...


class LogStore(Protocol):
    """A run store, as the live-call layer writes to it."""

    async def merge_logs(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeOutcome: ...
