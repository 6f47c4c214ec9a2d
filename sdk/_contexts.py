"""Authoring layer: the contexts a plugin's runtime factory and completion handler receive.

Contract: the reference's fields in the reference's order, frozen, holding objects (`_views.py`):
`workflow_run` reads the run row's fields as attributes, `workflow_graph.nodes` maps node ids to
nodes whose `.data` is the validated model, `user_config` sections have `.provider` / `.model`.
`context_messages_provider` is synchronous, as in the reference: the plugin server fetches the
messages from the host before it calls into a session (and a call from a worker thread fetches them
live). The completion context adds, after the reference's six fields, an idempotency key per node
id, the attempt number, and `publish_artifact` for files served by the run's public token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ._views import GraphNode

logger = logging.getLogger("plugbox.sdk.contexts")

Messages = list[dict[str, Any]]
ContextMessagesProvider = Callable[[], Messages]


def _no_messages() -> Messages:
    return []


class SyncMessages:
    """The contract's synchronous `context_messages_provider`, over the host's async answer.

    On the event loop it returns the messages last fetched (the server refreshes them before it
    calls into a session); in a worker thread (a sync author function) it fetches them live.
    """

    def __init__(self, fetch: Callable[[], Coroutine[Any, Any, Messages]]) -> None:
        self._fetch = fetch
        self.latest: Messages = []

    def __call__(self) -> Messages:
        import anyio.from_thread  # here, not at the top: most plugins never call it (a start's CPU)

        try:
            return list(anyio.from_thread.run(self._fetch))
        except RuntimeError:  # not in a worker thread: serve the last fetched messages
            return list(self.latest)

    async def refresh(self) -> None:
        try:
            self.latest = list(await self._fetch())
        except Exception as exc:  # the host could not answer: keep the last messages, say so
            logger.warning("could not fetch the context messages from the host: %s", exc)


@dataclass(frozen=True)
class IntegrationRuntimeContext:
    """What `create_runtime_sessions(context)` gets before the call starts."""

    workflow_run_id: int
    workflow_run: Any = None
    workflow_graph: Any = None
    run_definition: Any = None
    user_config: Any = None
    is_realtime: bool = False
    context_messages_provider: ContextMessagesProvider = _no_messages

    def nodes_of(self, type_name: str) -> list[Any]:
        """Every graph node of `type_name` (a package decides which of them are enabled)."""
        nodes = getattr(self.workflow_graph, "nodes", None)
        if nodes is None and isinstance(self.workflow_graph, dict):
            nodes = self.workflow_graph.get("nodes")
        values = nodes.values() if isinstance(nodes, dict) else nodes or []
        return [node for node in values if isinstance(node, dict) and node.get("type") == type_name]

    def enabled_nodes(self, type_name: str, toggle: str = "enabled") -> list[Any]:
        """The nodes of `type_name` whose boolean field `toggle` is not false (absent: enabled)."""
        return [node for node in self.nodes_of(type_name) if _toggle(node, toggle) is not False]


def _toggle(node: Any, toggle: str) -> Any:
    if isinstance(node, GraphNode):
        return getattr(node.data, toggle, True)
    return (node.get("data") or {}).get(toggle, True)


@dataclass(frozen=True)
class PublishedArtifact:
    name: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class IntegrationCompletionContext:
    """What `run_completion(nodes, context)` gets after the call."""

    workflow_run_id: int
    workflow_run: Any
    workflow_definition: dict[str, Any]
    definition_id: int | None
    organization_id: int
    public_token: str | None = None
    idempotency_keys: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    artifacts: list[PublishedArtifact] = field(default_factory=list)

    def publish_artifact(self, name: str, body: bytes, content_type: str) -> None:
        """Publish a file for this run, served at the run's public URL under `name`."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"artifact name {name!r} must be a plain file name")
        self.artifacts.append(PublishedArtifact(name, bytes(body), content_type))


def completion_context(**fields: Any) -> IntegrationCompletionContext:
    """`IntegrationCompletionContext(**fields)`, every field given, built without the frozen
    dataclass's `__init__`: that sets each of the 9 fields through `object.__setattr__` and cost
    ~3 us of a ~16 us `completion.run` in the plugin (docs/benchmarks.md). The instance is the
    same: frozen, equal to the constructor's (tests/sdk_server/test_completion_path.py)."""
    context = object.__new__(IntegrationCompletionContext)
    context.__dict__.update(fields)
    return context
