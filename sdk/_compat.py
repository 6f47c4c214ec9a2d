"""Authoring layer: import aliases for packages written against the in-process framework.

Contract: `install_compat_aliases()` makes every module path an in-process package imports
resolvable, each exposing the names the reference module exports, backed by this SDK:
`api.services.integrations` (the contract types and the registry functions),
`api.services.integrations.base` (the types, `RuntimeFactory`, `CompletionHandler`, and the
`BaseNodeData` / `NodeSpec` it imports), `api.services.integrations.registry`,
`api.services.workflow.node_data`, `api.services.workflow.node_specs` (and its `_base` and
`model_spec`). The plugin server calls it only when the plugin's manifest asks (`compat = true`),
inside the plugin process; `import sdk` never installs it.
"""

from __future__ import annotations

import sys
import types

from . import _build, _contexts, _nodes, _package, _registry, _runtime, _spec

_TYPES: dict[str, object] = {
    "IntegrationCompletionContext": _contexts.IntegrationCompletionContext,
    "IntegrationNodeRegistration": _package.IntegrationNodeRegistration,
    "IntegrationPackageSpec": _package.IntegrationPackageSpec,
    "IntegrationRuntimeContext": _contexts.IntegrationRuntimeContext,
    "IntegrationRuntimeSession": _runtime.IntegrationRuntimeSession,
}
_REGISTRY: dict[str, object] = {
    name: getattr(_registry, name)
    for name in (
        "register_package",
        "all_node_specs",
        "all_packages",
        "all_routers",
        "create_runtime_sessions",
        "get_package",
        "get_node_data_model",
        "get_node_registration",
        "get_node_secret_fields",
        "get_node_spec",
        "has_completion_handlers",
        "iter_completion_packages",
        "run_completion_handlers",
    )
}
_SPEC_BASE: dict[str, object] = {
    name: getattr(_spec, name)
    for name in (
        "SPEC_VERSION",
        "DisplayOptions",
        "GraphConstraints",
        "NodeCategory",
        "NodeExample",
        "NodeSpec",
        "NumberInputOptions",
        "PropertyLayoutOptions",
        "PropertyOption",
        "PropertyRendererOptions",
        "PropertySpec",
        "PropertyType",
        "evaluate_display_options",
    )
}
_MODEL_SPEC: dict[str, object] = {
    **{
        name: _SPEC_BASE[name]
        for name in _SPEC_BASE
        if name[0].isupper() and name != "SPEC_VERSION"
    },
    "NodeSpecMetadata": _nodes.NodeSpecMetadata,
    "node_spec": _nodes.node_spec,
    "spec_field": _nodes.spec_field,
    "build_spec": _build.build_spec,
}

ALIASES: dict[str, dict[str, object]] = {
    "api.services.integrations": {**_TYPES, **_REGISTRY},
    "api.services.integrations.base": {
        **_TYPES,
        "RuntimeFactory": _package.RuntimeFactory,
        "CompletionHandler": _package.CompletionHandler,
        "BaseNodeData": _nodes.BaseNodeData,
        "NodeSpec": _spec.NodeSpec,
    },
    "api.services.integrations.registry": {
        **_REGISTRY,
        **{name: _TYPES[name] for name in _TYPES if name != "IntegrationRuntimeSession"},
        "BaseNodeData": _nodes.BaseNodeData,
    },
    "api.services.workflow.node_data": {
        "BaseNodeData": _nodes.BaseNodeData,
        "PropertyType": _spec.PropertyType,
        "spec_field": _nodes.spec_field,
    },
    "api.services.workflow.node_specs": {**_SPEC_BASE, "build_spec": _build.build_spec},
    "api.services.workflow.node_specs._base": _SPEC_BASE,
    "api.services.workflow.node_specs.model_spec": _MODEL_SPEC,
}
# Modules that are packages in the reference (their submodules must import through them).
_PACKAGES = frozenset({"api.services.integrations", "api.services.workflow.node_specs"})


def install_compat_aliases() -> list[str]:
    """Install the alias modules (and their parent packages); return the names installed."""
    installed: list[str] = []
    for dotted, names in ALIASES.items():
        parts = dotted.split(".")
        for depth in range(1, len(parts)):
            installed += _ensure_package(".".join(parts[:depth]))
        module = sys.modules.get(dotted)
        if module is None or not getattr(module, "__plugbox_alias__", False):
            module = types.ModuleType(dotted, f"plugbox compatibility alias of {dotted}")
            module.__plugbox_alias__ = True  # type: ignore[attr-defined]
            if dotted in _PACKAGES:
                module.__path__ = []  # submodules resolve through sys.modules
            sys.modules[dotted] = module
            _link(dotted, module)
            installed.append(dotted)
        module.__dict__.update(names)
        module.__all__ = sorted(name for name in vars(module) if not name.startswith("_"))  # type: ignore[attr-defined]
    return installed


def _ensure_package(dotted: str) -> list[str]:
    if dotted in sys.modules:
        return []
    package = types.ModuleType(dotted, "plugbox compatibility alias package")
    package.__path__ = []  # a package, so submodules resolve through sys.modules
    package.__plugbox_alias__ = True  # type: ignore[attr-defined]
    sys.modules[dotted] = package
    _link(dotted, package)
    return [dotted]


def _link(dotted: str, module: types.ModuleType) -> None:
    parent, _, child = dotted.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
