"""Authoring layer: the objects a plugin's contexts carry (run row, graph, user config).

Contract: the host sends plain JSON; packages written for the in-process framework read objects
(`context.workflow_run.logs`, `context.workflow_graph.nodes.values()`, `node.data.x_enabled`,
`context.user_config.llm.provider`). Each view is a `dict` subclass, so code written against the
JSON (`run["logs"]`, `node.get("data")`) keeps working, with attribute access on top: a key reads
as an attribute, and a field the reference's object has but the host did not send reads as None
(any other missing attribute raises `AttributeError`, so `getattr(x, name, default)` behaves).
Graph nodes of the package's own types carry `.data` validated by their model; a node whose data
does not validate, or of another type, carries its data as an `AttrDict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError


class AttrDict(dict[str, Any]):
    """A JSON object that also reads its keys as attributes."""

    known: ClassVar[frozenset[str]] = frozenset()  # fields that read as None when absent

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self:
            return self[name]
        if name in self.known:
            return None
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")


class RunView(AttrDict):
    """`context.workflow_run`: the run row's fields as attributes."""

    known = frozenset(
        {
            "id",
            "name",
            "mode",
            "status",
            "logs",
            "annotations",
            "usage_info",
            "cost_info",
            "recording_url",
            "transcript_url",
            "initial_context",
            "gathered_context",
            "definition_id",
            "organization_id",
            "workflow_id",
            "created_at",
            "is_completed",
        }
    )


class DefinitionView(AttrDict):
    """`context.run_definition`: the pinned definition row (`version_number`, ...)."""

    known = frozenset({"id", "version_number", "workflow_id", "workflow_json", "created_at"})


class ServiceView(AttrDict):
    """One `user_config` section: `.provider`, `.model`."""

    known = frozenset({"provider", "model", "voice", "language", "base_url"})


class UserConfigView(AttrDict):
    """`context.user_config`: sections `.stt`, `.llm`, `.tts`, `.realtime` (None when absent)."""

    known = frozenset({"stt", "llm", "tts", "realtime", "embeddings"})


class GraphNode(AttrDict):
    """A workflow node: the JSON keys (`id`, `type`, `data`), and `.id`, `.node_type`, `.data`."""

    def __init__(self, raw: Mapping[str, Any], data: Any) -> None:
        super().__init__(raw)
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name == "data":
            return self._data
        if name == "node_type":
            return self.get("type")
        if name in ("name", "is_start", "is_end"):
            return getattr(self._data, name, None)
        return super().__getattr__(name)


class GraphEdge(AttrDict):
    """A workflow edge: `.id`, `.source`, `.target`, `.data`, `.label`, `.condition`."""

    known = frozenset({"id", "source", "target", "data"})

    def __getattr__(self, name: str) -> Any:
        if name in ("label", "condition", "transition_speech"):
            return (self.get("data") or {}).get(name)
        return super().__getattr__(name)


class WorkflowGraphView(AttrDict):
    """`context.workflow_graph`: `.nodes` (id -> `GraphNode`) and `.edges` (`GraphEdge`s)."""

    known = frozenset({"nodes", "edges"})


def run_view(raw: Mapping[str, Any] | None) -> RunView:
    view = RunView(raw or {})
    for key in ("logs", "annotations"):
        view.setdefault(key, {})
    return view


def user_config_view(raw: Mapping[str, Any] | None) -> UserConfigView:
    return UserConfigView(
        {
            key: ServiceView(value) if isinstance(value, Mapping) else value
            for key, value in (raw or {}).items()
        }
    )


def graph_view(
    raw: Mapping[str, Any] | None, models: Mapping[str, type[BaseModel]]
) -> WorkflowGraphView:
    """The graph with `nodes` keyed by id; own node types' data validated by `models`."""
    raw = raw or {}
    nodes: dict[str, GraphNode] = {}
    for node in _node_dicts(raw.get("nodes")):
        nodes[str(node.get("id"))] = GraphNode(node, _node_data(node, models))
    edges = [GraphEdge(edge) for edge in raw.get("edges") or [] if isinstance(edge, Mapping)]
    return WorkflowGraphView({**raw, "nodes": nodes, "edges": edges})


def _node_dicts(nodes: Any) -> Iterable[Mapping[str, Any]]:
    values = nodes.values() if isinstance(nodes, Mapping) else nodes or []
    return [node for node in values if isinstance(node, Mapping)]


def _node_data(node: Mapping[str, Any], models: Mapping[str, type[BaseModel]]) -> Any:
    raw = node.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    model = models.get(str(node.get("type")))
    if model is not None:
        try:
            return model.model_validate(data)
        except ValidationError:
            pass  # the host validated the definition; a node that still fails reads as raw data
    return AttrDict(data)
