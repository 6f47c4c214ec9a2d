"""Call metrics plugin: live turn/latency/usage collector, HTML report, aggregated stats route."""

from sdk import IntegrationPackageSpec, register_package

from .completion import run_completion
from .node import NODE
from .routes import router
from .runtime import create_runtime_sessions

PACKAGE = register_package(
    IntegrationPackageSpec(
        name="call_metrics",
        nodes=(NODE,),
        create_runtime_sessions=create_runtime_sessions,
        run_completion=run_completion,
        routers=(router,),
    )
)
