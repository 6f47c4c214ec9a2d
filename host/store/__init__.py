"""Store layer: the run store — runs, their logs and annotations, node results and jobs.

`RunStore` is the backend-neutral contract (see `_protocol`); `SQLiteRunStore` is the embedded
backend. Storage faults form one branch of the error tree: `StoreError` (persistent, names the
file) and `StoreUnavailable` (a transient fault that outlasted the fault budget).
"""

from ._faults import FAULT_BUDGET_S as FAULT_BUDGET_S
from ._faults import StoreError as StoreError
from ._faults import StoreUnavailable as StoreUnavailable
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
    "InvalidArtifactName",
    "Job",
    "JobRunning",
    "JobState",
    "MergeReport",
    "NodeAttempt",
    "RunStore",
    "RunSummary",
    "SQLiteRunStore",
    "StoreError",
    "StoreUnavailable",
    "WorkflowRun",
    "artifact_path",
    "to_json",
]
