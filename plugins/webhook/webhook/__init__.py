"""Webhook plugin: POSTs a finished run's summary and annotations, signed, with retries."""

from sdk import IntegrationPackageSpec, register_package

from .completion import run_completion
from .node import NODE

PACKAGE = register_package(
    IntegrationPackageSpec(name="webhook", nodes=(NODE,), run_completion=run_completion)
)
