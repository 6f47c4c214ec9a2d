"""Chat notifier plugin: a call summary posted to a chat incoming-webhook URL."""

from sdk import IntegrationPackageSpec, register_package

from .completion import run_completion
from .node import NODE

PACKAGE = register_package(
    IntegrationPackageSpec(name="chat_notifier", nodes=(NODE,), run_completion=run_completion)
)
