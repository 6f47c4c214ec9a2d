"""Completion layer: run store, post-call orchestration, durable jobs (embedded or on ARQ).

`SQLiteRunStore` is the embedded run store; `run_integrations(run_id, plugins=..., store=...)`
runs the contract's phases; `EmbeddedWorker` runs queued jobs in-process; `host.completion._arq`
runs the same job on Redis for scale-out (imported only by `plugbox worker`), and a platform queues
a run there with `enqueue_run_integrations(run_id, redis_url=...)`.
"""

from .._keys import HOST_WRITER as HOST_WRITER
from ..client import ResultError as ResultError
from ..client import check_result as check_result
from ..client import error_entry as error_entry
from ._jobs import EmbeddedWorker as EmbeddedWorker
from ._jobs import enqueue as enqueue
from ._jobs import job_state as job_state
from ._orchestrator import CompletionReport as CompletionReport
from ._orchestrator import PluginOutcome as PluginOutcome
from ._orchestrator import idempotency_key as idempotency_key
from ._orchestrator import run_integrations as run_integrations
from ._remote import enqueue_run_integrations as enqueue_run_integrations
from ._store import MergeReport as MergeReport
from ._store import SQLiteRunStore as SQLiteRunStore
from ._store import WorkflowRun as WorkflowRun

RunStore = SQLiteRunStore

__all__ = [
    "HOST_WRITER",
    "CompletionReport",
    "EmbeddedWorker",
    "MergeReport",
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
