"""Completion layer: post-call orchestration and durable jobs (embedded or on ARQ).

`run_integrations(run_id, plugins=..., store=...)` runs the contract's phases; `EmbeddedWorker`
runs queued jobs in-process under renewed leases; `host.completion._arq` runs the same job on
Redis for scale-out (imported only by `plugbox worker`), and a platform queues a run there with
`enqueue_run_integrations(run_id, redis_url=..., store=...)`. The run store behind them is
`host.store` (`RunStore`, `SQLiteRunStore`), re-exported here for existing callers.
"""

from ..client import ResultError as ResultError
from ..client import check_result as check_result
from ..client import error_entry as error_entry
from ..store import HOST_WRITER as HOST_WRITER
from ..store import JobState as JobState
from ..store import MergeReport as MergeReport
from ..store import RunStore as RunStore
from ..store import SQLiteRunStore as SQLiteRunStore
from ..store import WorkflowRun as WorkflowRun
from ._jobs import EmbeddedWorker as EmbeddedWorker
from ._jobs import JobRunner as JobRunner
from ._jobs import enqueue as enqueue
from ._jobs import job_state as job_state
from ._orchestrator import CompletionReport as CompletionReport
from ._orchestrator import PluginOutcome as PluginOutcome
from ._orchestrator import idempotency_key as idempotency_key
from ._orchestrator import run_integrations as run_integrations
from ._remote import enqueue_run_integrations as enqueue_run_integrations
from ._retry import PluginLoadFailed as PluginLoadFailed

__all__ = [
    "HOST_WRITER",
    "CompletionReport",
    "EmbeddedWorker",
    "JobRunner",
    "JobState",
    "MergeReport",
    "PluginLoadFailed",
    "PluginOutcome",
    "ResultError",
    "RunStore",
    "SQLiteRunStore",
    "WorkflowRun",
    "check_result",
    "enqueue",
    "enqueue_run_integrations",
    "error_entry",
    "idempotency_key",
    "job_state",
    "run_integrations",
]
