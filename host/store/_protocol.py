"""Store layer: the run store's contract, independent of the database behind it.

Contract: `RunStore` is what the completion layer, the job queue, the API and the CLI may ask of
a run store; nothing outside a backend module writes SQL. The embedded backend is SQLite
(`SQLiteRunStore`, one file, one machine); a networked backend (PostgreSQL-class: row locks,
`SELECT ... FOR UPDATE SKIP LOCKED` for `claim`) implements the same methods for workers on many
machines. Every method is a short transaction of its own; a backend turns transient faults
(busy, full, I/O) into bounded retries and persistent ones into `StoreError` naming its target.

Jobs: one per run. `pending` -> `running` (a lease owned by a worker *instance* id, renewed by
`renew` while the job runs) -> `done` | `partial` | `failed`; a job whose lease expired while
running was orphaned by a dead worker: the next `claim` counts that death and, after
`max_deaths`, parks it (`parked`, with the reason) instead of running it again. `retry` revives
any finished or parked job and opens a new attempt group for the nodes it names. A job released
with a delay (deferred) stays `pending` but is claimable only after its `not_before`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .._keys import HOST_WRITER as HOST_WRITER
from .._keys import RESERVED_PREFIXES as RESERVED_PREFIXES
from .._keys import InvalidArtifactName as InvalidArtifactName
from .._keys import artifact_path as artifact_path

# Keys of the run that the store owns; `fields` never overrides them.
_CORE_RUN_KEYS = frozenset({"id", "definition_id", "organization_id", "logs", "annotations"})


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # every node's current attempt group succeeded (or there was nothing to do)
    PARTIAL = "partial"  # some nodes done, some failed
    FAILED = "failed"  # every node failed, or the job itself failed
    PARKED = "parked"  # its attempts kept killing the worker; `retry` revives it

    @property
    def finished(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class Job:
    run_id: int
    state: JobState
    claims: int  # how often a worker took it
    deaths: int  # how often a worker died (lease expired) while running it
    lease_owner: str | None
    lease_expires: float | None
    enqueued_at: float
    finished_at: float | None
    error: str | None
    not_before: float | None = None  # a deferred pending job is not claimable before this


@dataclass(frozen=True)
class NodeAttempt:
    """The outcome of one attempt group of one node (the history is kept across retries)."""

    run_id: int
    node_id: str
    attempt_group: int
    plugin: str
    status: str  # "done" | "failed"
    attempts: int
    error: str | None
    recorded_at: float


@dataclass(frozen=True)
class RunSummary:
    """One line of a run list (the dashboard): its node results' current attempt groups."""

    run_id: int
    created_at: float
    done: int  # nodes whose current result is `done`
    failed: int  # ... `failed`
    recorded: int  # nodes with a current result


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


class RunStore(Protocol):
    """The run store every backend implements (see the module docstring)."""

    # -- runs, logs, annotations, artifacts ------------------------------------------------------
    async def create_run(
        self,
        *,
        workflow_definition: dict[str, Any],
        definition_id: int | None = None,
        organization_id: int = 0,
        logs: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> int: ...
    async def update_fields(self, run_id: int, fields: dict[str, Any]) -> None:
        """Merge run fields known only later (`usage_info`, `recording_url`) into the run."""
        ...

    async def get_run(self, run_id: int) -> WorkflowRun | None: ...
    async def get_run_by_token(self, token: str) -> WorkflowRun | None: ...
    async def ensure_public_token(self, run_id: int) -> str: ...
    async def merge_logs(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeReport: ...
    async def merge_annotations(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeReport: ...
    async def merge_logs_many(
        self, run_id: int, batches: list[tuple[str, dict[str, Any]]]
    ) -> list[MergeReport]:
        """Several writers' log entries in one transaction: all are stored, or none."""
        ...

    async def put_artifact(
        self, run_id: int, owner: str, name: str, content_type: str, body: bytes
    ) -> None:
        """Store plugin `owner`'s artifact `name`, replacing only `owner`'s own of that name.

        Artifacts are keyed by (run, owner, name); a backend checks both names with
        `artifact_path` first and lets its `InvalidArtifactName` (a `ValueError`) through."""
        ...

    async def get_artifact(
        self, run_id: int, owner: str, name: str
    ) -> tuple[str, bytes] | None: ...
    async def list_artifacts(self, run_id: int) -> list[str]:
        """The run's artifacts as namespaced names, `<owner>/<name>`, sorted."""
        ...

    # -- node results ------------------------------------------------------------------------------
    async def recorded_nodes(self, run_id: int) -> dict[str, str]:
        """node id -> status of each node's *current* attempt group, for recorded nodes."""
        ...

    async def attempt_groups(self, run_id: int) -> dict[str, int]:
        """node id -> its current attempt group (0 until a retry opens a new one)."""
        ...

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
        ...

    async def node_history(self, run_id: int) -> list[NodeAttempt]:
        """Every attempt group's result of every node, by node id then group."""
        ...

    async def run_summaries(self, *, limit: int = 50) -> list[RunSummary]:
        """The newest `limit` runs, newest first, with their current results counted."""
        ...

    # -- jobs ----------------------------------------------------------------------------------
    async def enqueue(self, run_id: int) -> bool:
        """A pending job for the run; False when it already has one (in any state)."""
        ...

    async def claim(
        self, owner: str, *, lease_s: float, max_deaths: int, run_id: int | None = None
    ) -> Job | None:
        """The oldest claimable job (or `run_id`'s): pending, or running on an expired lease."""
        ...

    async def renew(self, run_id: int, owner: str, *, lease_s: float) -> bool:
        """Extend `owner`'s lease; False when the job is no longer `owner`'s."""
        ...

    async def finish(self, run_id: int, owner: str, state: JobState, error: str | None) -> bool: ...
    async def release(self, run_id: int, owner: str, *, delay_s: float = 0.0) -> bool:
        """Give a running job back as pending without counting a death: at once (a drain), or
        claimable only after `delay_s` (a deferral: its plugin's circuit is open)."""
        ...

    async def get_job(self, run_id: int) -> Job | None: ...
    async def list_jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]: ...
    async def claimable(self, *, older_than_s: float = 0.0, limit: int = 1000) -> list[Job]:
        """Jobs a worker could claim now: pending for over `older_than_s`, or on an expired
        lease (a reaper re-queues them on a broker that may have lost them)."""
        ...

    async def retry(
        self, run_id: int, *, nodes: list[str] | None = None, plugin: str | None = None
    ) -> list[str]:
        """Revive the run's job; open a new attempt group for the named nodes (default: the
        failed ones). Returns the node ids that will run again."""
        ...

    # -- health ------------------------------------------------------------------------------------
    async def check_writable(self) -> None:
        """Take the store's write lock and give it up at once (`/readyz`): returns when a write
        could start now; raises `StoreError` (or `StoreUnavailable` after the fault budget)."""
        ...

    async def aclose(self) -> None: ...
