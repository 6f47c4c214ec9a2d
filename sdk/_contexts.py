"""Authoring layer: the contexts a plugin's runtime factory and completion handler receive.

Contract: the contract's fields, frozen. In plugbox the runtime context's
`context_messages_provider` is an async callable (it asks the host over the wire), and the
completion context adds an idempotency key per node id, the attempt number, and
`publish_artifact` for files served by the run's public token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ContextMessagesProvider = Callable[[], Awaitable[list[dict[str, Any]]]]


async def _no_messages() -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class IntegrationRuntimeContext:
    """What `create_runtime_sessions(context)` gets before the call starts."""

    workflow_run_id: int
    workflow_run: dict[str, Any] | None = None
    workflow_graph: dict[str, Any] | None = None
    run_definition: dict[str, Any] | None = None
    user_config: dict[str, Any] | None = None
    is_realtime: bool = False
    context_messages_provider: ContextMessagesProvider = _no_messages

    def enabled_nodes(self, type_name: str) -> list[dict[str, Any]]:
        """The graph's node dicts of `type_name` that are not disabled (`data.enabled` false)."""
        nodes = (self.workflow_graph or {}).get("nodes") or []
        values = nodes.values() if isinstance(nodes, dict) else nodes
        return [
            node
            for node in values
            if isinstance(node, dict)
            and node.get("type") == type_name
            and (node.get("data") or {}).get("enabled", True) is not False
        ]


@dataclass(frozen=True)
class PublishedArtifact:
    name: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class IntegrationCompletionContext:
    """What `run_completion(nodes, context)` gets after the call."""

    workflow_run_id: int
    workflow_run: dict[str, Any]
    workflow_definition: dict[str, Any]
    organization_id: int
    definition_id: int | None = None
    public_token: str | None = None
    idempotency_keys: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    artifacts: list[PublishedArtifact] = field(default_factory=list)

    def publish_artifact(self, name: str, body: bytes, content_type: str) -> None:
        """Publish a file for this run, served at the run's public URL under `name`."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        self.artifacts.append(PublishedArtifact(name, bytes(body), content_type))
