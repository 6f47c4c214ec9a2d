"""Store layer: the run store — runs, their logs and annotations, node results and jobs.

`RunStore` is the backend-neutral contract (see `_protocol`); `SQLiteRunStore` is the embedded
backend, `PostgresRunStore` the networked one (imported on first use: its driver is the optional
extra `plugbox[postgres]`); `open_store(url, data_dir=...)` opens the one a URL names.
Storage faults form one branch of the error tree: `StoreError` (persistent, names the
file) and `StoreUnavailable` (a transient fault that outlasted the fault budget).
"""

from typing import TYPE_CHECKING, Any

from ._faults import FAULT_BUDGET_S as FAULT_BUDGET_S
from ._faults import StoreError as StoreError
from ._faults import StoreUnavailable as StoreUnavailable
from ._open import STORE_FILE as STORE_FILE
from ._open import open_store as open_store
from ._protocol import HOST_WRITER as HOST_WRITER
from ._protocol import RESERVED_PREFIXES as RESERVED_PREFIXES
from ._protocol import InvalidArtifactName as InvalidArtifactName
from ._protocol import Job as Job
from ._protocol import JobState as JobState
from ._protocol import MergeReport as MergeReport
from ._protocol import NodeAttempt as NodeAttempt
from ._protocol import RunStore as RunStore
from ._protocol import RunSummary as RunSummary
from ._protocol import WorkflowRun as WorkflowRun
from ._protocol import artifact_path as artifact_path
from ._protocol import to_json as to_json
from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._sqlite import SQLiteRunStore as SQLiteRunStore
from ._sqlite_jobs import JobRunning as JobRunning

__all__ = [
    "FAULT_BUDGET_S",
    "HOST_WRITER",
    "RESERVED_PREFIXES",
    "SCHEMA_VERSION",
    "STORE_FILE",
    "InvalidArtifactName",
    "Job",
    "JobRunning",
    "JobState",
    "MergeReport",
    "NodeAttempt",
    "PostgresRunStore",
    "RunStore",
    "RunSummary",
    "SQLiteRunStore",
    "StoreError",
    "StoreUnavailable",
    "WorkflowRun",
    "artifact_path",
    "open_store",
    "to_json",
]

if TYPE_CHECKING:
    from ._postgres import PostgresRunStore as PostgresRunStore


def __getattr__(name: str) -> Any:
    if name == "PostgresRunStore":  # psycopg is imported only by deployments that use it
        from ._postgres import PostgresRunStore

        return PostgresRunStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
