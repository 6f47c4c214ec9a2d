"""Call QA plugin: rule-based quality checks producing a score and findings per node."""

from sdk import IntegrationPackageSpec, register_package

from .completion import run_completion
from .node import NODE
from .runtime import create_runtime_sessions

PACKAGE = register_package(
    IntegrationPackageSpec(
        name="call_qa",
        nodes=(NODE,),
        create_runtime_sessions=create_runtime_sessions,
        run_completion=run_completion,
    )
)
