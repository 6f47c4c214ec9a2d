"""Authoring layer: the reference registry's module functions, over this process's registry.

Contract (`api.services.integrations.registry` in the reference): lookups by node type return the
registration, model, spec or secret fields, or None / `()` for an unknown type; `all_*` iterate
packages sorted by name; `create_runtime_sessions` calls every package's factory in that order;
`run_completion_handlers` hands each package the node dicts of its types (when it has at least
one) and turns a crash into `{"integration_<package>": {"error": "completion_handler_failed"}}`.
In a plugin process the registry holds the one package being served, so these are what an
in-process package's own helpers and tests call; the host does the cross-package work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from ._package import DEFAULT_REGISTRY, IntegrationNodeRegistration, IntegrationPackageSpec
from ._package import register_package as register_package
from ._spec import NodeSpec

logger = logging.getLogger("plugbox.sdk.registry")


def all_packages() -> list[IntegrationPackageSpec]:
    return list(DEFAULT_REGISTRY)


def get_package(name: str) -> IntegrationPackageSpec | None:
    return DEFAULT_REGISTRY.get(name)


def get_node_registration(type_name: str) -> IntegrationNodeRegistration | None:
    for package in DEFAULT_REGISTRY:
        node = package.node(type_name)
        if node is not None:
            return node
    return None


def get_node_data_model(type_name: str) -> type[BaseModel] | None:
    registration = get_node_registration(type_name)
    return registration.data_model if registration else None


def get_node_spec(type_name: str) -> NodeSpec | None:
    registration = get_node_registration(type_name)
    return registration.node_spec if registration else None


def get_node_secret_fields(type_name: str) -> tuple[str, ...]:
    registration = get_node_registration(type_name)
    return registration.sensitive_fields if registration else ()


def all_node_specs() -> list[NodeSpec]:
    return [node.node_spec for package in DEFAULT_REGISTRY for node in package.nodes]


def all_routers() -> list[Any]:
    return [router for package in DEFAULT_REGISTRY for router in package.routers]


def create_runtime_sessions(context: Any) -> list[Any]:
    sessions: list[Any] = []
    for package in DEFAULT_REGISTRY:
        if package.create_runtime_sessions is not None:
            sessions.extend(package.create_runtime_sessions(context))
    return sessions


def iter_completion_packages(
    workflow_definition: dict[str, Any] | None,
) -> Iterator[tuple[IntegrationPackageSpec, list[dict[str, Any]]]]:
    nodes = (workflow_definition or {}).get("nodes") or []
    for package in DEFAULT_REGISTRY:
        types = set(package.type_names)
        own = [node for node in nodes if isinstance(node, dict) and node.get("type") in types]
        if own:
            yield package, own


def has_completion_handlers(workflow_definition: dict[str, Any] | None) -> bool:
    return any(
        package.run_completion is not None
        for package, _ in iter_completion_packages(workflow_definition)
    )


async def run_completion_handlers(*, context: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for package, nodes in iter_completion_packages(context.workflow_definition):
        if package.run_completion is None:
            continue
        try:
            outcome = await package.run_completion(nodes, context)
        except Exception:  # the reference's boundary: one package's crash is recorded, not raised
            logger.exception("completion handler of package %r failed", package.name)
            results[f"integration_{package.name}"] = {"error": "completion_handler_failed"}
            continue
        if outcome:
            results.update(outcome)
    return results
