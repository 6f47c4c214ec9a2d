"""Authoring layer: node registrations, package specs, the package registry and loading.

Contract (the reference's registry): a package name is the registry key; registering the same
package object again is a no-op, a different package under an existing name or a node type that
another package already registered is an `AuthoringError`. Iteration is sorted by package name.
`register_package` uses one module-level registry (the one place the contract needs one); tests
build their own `PackageRegistry`. `load_package(import_name)` imports a plugin package and returns
the package it registered.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ._errors import AuthoringError, owner_of
from ._spec import NodeSpec, PropertySpec


@dataclass(frozen=True)
class IntegrationNodeRegistration:
    """One node type of a package. Sensitive properties get `sensitive: true` in the spec."""

    type_name: str
    data_model: type[BaseModel]
    node_spec: NodeSpec
    sensitive_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = owner_of(self.data_model)
        if self.node_spec.name != self.type_name:
            raise AuthoringError(
                f"@node_spec name {self.node_spec.name!r} differs from type_name "
                f"{self.type_name!r}",
                fix="use the same node type string in both places",
                owner=owner,
            )
        missing = [
            name for name in self.sensitive_fields if name not in self.data_model.model_fields
        ]
        if missing:
            raise AuthoringError(
                f"sensitive_fields {missing} are not fields of {self.data_model.__name__}",
                fix="list only field names of the node model",
                owner=owner,
            )
        object.__setattr__(self, "sensitive_fields", tuple(self.sensitive_fields))
        object.__setattr__(
            self, "node_spec", _mark_sensitive(self.node_spec, self.sensitive_fields)
        )


def _mark_sensitive(spec: NodeSpec, sensitive: Sequence[str]) -> NodeSpec:
    def mark(prop: PropertySpec) -> PropertySpec:
        if prop.name not in sensitive:
            return prop
        return prop.model_copy(update={"sensitive": True})

    return spec.model_copy(update={"properties": [mark(prop) for prop in spec.properties]})


CompletionHandler = Callable[[list[dict[str, Any]], Any], Awaitable[dict[str, Any]]]
RuntimeFactory = Callable[[Any], Sequence[Any]]


@dataclass(frozen=True)
class IntegrationPackageSpec:
    """What a plugin package registers: its nodes and its optional capabilities."""

    name: str
    nodes: tuple[IntegrationNodeRegistration, ...] = ()
    routers: tuple[Any, ...] = ()
    create_runtime_sessions: RuntimeFactory | None = None
    run_completion: CompletionHandler | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "routers", tuple(self.routers))
        seen: set[str] = set()
        for node in self.nodes:
            if node.type_name in seen:
                raise AuthoringError(
                    f"node type {node.type_name!r} is registered twice",
                    fix="give each node registration its own type_name",
                    owner=f"package {self.name!r}",
                )
            seen.add(node.type_name)

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(node.type_name for node in self.nodes)

    def node(self, type_name: str) -> IntegrationNodeRegistration | None:
        return next((node for node in self.nodes if node.type_name == type_name), None)


@dataclass
class PackageRegistry:
    """Packages by name; node types unique across packages."""

    _packages: dict[str, IntegrationPackageSpec] = field(default_factory=dict)

    def register(self, package: IntegrationPackageSpec) -> IntegrationPackageSpec:
        existing = self._packages.get(package.name)
        if existing is package:
            return package
        if existing is not None:
            raise AuthoringError(
                f"a different package is already registered as {package.name!r}",
                fix="choose a unique package name",
                owner=f"package {package.name!r}",
            )
        self._check_types(package)
        self._packages[package.name] = package
        return package

    def _check_types(self, package: IntegrationPackageSpec) -> None:
        for other in self._packages.values():
            clash = sorted(set(other.type_names) & set(package.type_names))
            if clash:
                raise AuthoringError(
                    f"node types {clash} are already registered by package {other.name!r}",
                    fix="node type strings must be unique across packages",
                    owner=f"package {package.name!r}",
                )

    def get(self, name: str) -> IntegrationPackageSpec | None:
        return self._packages.get(name)

    def names(self) -> list[str]:
        return sorted(self._packages)

    def __iter__(self) -> Iterator[IntegrationPackageSpec]:
        return iter([self._packages[name] for name in self.names()])


DEFAULT_REGISTRY = PackageRegistry()


def register_package(package: IntegrationPackageSpec) -> IntegrationPackageSpec:
    """Register `package` in the default registry and return it (the contract's call)."""
    return DEFAULT_REGISTRY.register(package)


def get_registered_package(name: str) -> IntegrationPackageSpec | None:
    return DEFAULT_REGISTRY.get(name)


def load_package(import_name: str) -> IntegrationPackageSpec:
    """Import a plugin's package and return the one package it registered."""
    before = set(DEFAULT_REGISTRY.names())
    module = importlib.import_module(import_name)
    added = sorted(set(DEFAULT_REGISTRY.names()) - before)
    if len(added) == 1:
        package = DEFAULT_REGISTRY.get(added[0])
        assert package is not None
        return package
    found = [value for value in vars(module).values() if isinstance(value, IntegrationPackageSpec)]
    if len(added) == 0 and len(found) == 1:
        return found[0]
    raise AuthoringError(
        f"importing {import_name!r} registered {len(added) or len(found)} packages",
        fix="call register_package(IntegrationPackageSpec(...)) exactly once in __init__.py",
        owner=f"module {import_name!r} ({sys.modules[import_name].__file__})",
    )
