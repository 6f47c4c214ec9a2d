"""HTTP layer: a workflow's graph rules, as the reference platform checks them (pure functions).

Contract: `graph_problems(nodes, edges, spec_of, all_specs)` lists, with the reference's messages:
edges whose source or target is not a node ("Edge references missing node"); per node, incoming
and outgoing edge counts outside its spec's `graph_constraints` (parallel edges between the same
two nodes count once, as the reference's adjacency map does; dangling edges are not counted);
per node type, instance counts outside `min_instances` / `max_instances` (every spec is checked,
so a required type that is absent is reported). A type without a spec (a core node type) has no
constraints here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]


@dataclass(frozen=True)
class GraphProblem:
    kind: str  # "node" | "edge" | "workflow", the reference's ItemKind
    id: str | None  # node or edge id; None for the workflow
    field: str | None
    message: str
    type: str


def graph_problems(
    nodes: list[dict[str, Any]],
    edges: list[Any],
    spec_of: Callable[[str], Spec | None],
    all_specs: Iterable[Spec],
) -> list[GraphProblem]:
    ids = {str(node.get("id")) for node in nodes}
    problems, links = _edges(edges, ids)
    problems += _connection_problems(nodes, links, spec_of)
    problems += _instance_problems(Counter(str(n.get("type")) for n in nodes), all_specs)
    return problems


def _edges(edges: list[Any], ids: set[str]) -> tuple[list[GraphProblem], set[tuple[str, str]]]:
    problems: list[GraphProblem] = []
    links: set[tuple[str, str]] = set()
    for index, edge in enumerate(edges):
        edge = edge if isinstance(edge, dict) else {}
        source, target = str(edge.get("source")), str(edge.get("target"))
        missing = [end for end in (source, target) if end not in ids]
        for _ in missing:
            problems.append(
                GraphProblem(
                    "edge",
                    _edge_id(edge),
                    f"edges.{index}",
                    "Edge references missing node",
                    "missing_node",
                )
            )
        if not missing:
            links.add((source, target))  # a set: parallel edges are one adjacency, as upstream
    return problems, links


def _edge_id(edge: dict[str, Any]) -> str | None:
    return str(edge["id"]) if edge.get("id") is not None else None


def _connection_problems(
    nodes: list[dict[str, Any]], links: set[tuple[str, str]], spec_of: Callable[[str], Spec | None]
) -> list[GraphProblem]:
    incoming = Counter(target for _, target in links)
    outgoing = Counter(source for source, _ in links)
    problems = []
    for node in nodes:
        spec = spec_of(str(node.get("type")))
        constraints = (spec or {}).get("graph_constraints")
        if not constraints:
            continue
        node_id, label = str(node.get("id")), str(spec.get("display_name") if spec else "")
        for direction, count in (("incoming", incoming[node_id]), ("outgoing", outgoing[node_id])):
            for message in _degree_messages(label, direction, count, constraints):
                problems.append(GraphProblem("node", node_id, None, message, "graph_constraint"))
    return problems


def _degree_messages(label: str, direction: str, count: int, constraints: Spec) -> list[str]:
    low, high = constraints.get(f"min_{direction}"), constraints.get(f"max_{direction}")
    messages = []
    if high is not None and count > high:
        messages.append(
            f"{label} cannot have {direction} edges"
            if high == 0
            else f"{label} can have at most {high} {direction} edge(s)"
        )
    if low is not None and count < low:
        messages.append(f"{label} must have at least {low} {direction} edge(s)")
    return messages


def _instance_problems(counts: Counter[str], all_specs: Iterable[Spec]) -> list[GraphProblem]:
    problems = []
    for spec in all_specs:
        constraints = spec.get("graph_constraints") or {}
        count, label = counts.get(str(spec.get("name")), 0), str(spec.get("display_name"))
        high, low = constraints.get("max_instances"), constraints.get("min_instances")
        if high is not None and count > high:
            message = (
                f"Workflow can have at most one {label}"
                if high == 1
                else f"Workflow can have at most {high} {label} nodes"
            )
            problems.append(GraphProblem("workflow", None, None, message, "instance_constraint"))
        if low is not None and count < low:
            message = (
                f"Workflow must have at least one {label}"
                if low == 1
                else f"Workflow must have at least {low} {label} nodes"
            )
            problems.append(GraphProblem("workflow", None, None, message, "instance_constraint"))
    return problems
