"""Authoring layer: import aliases for packages written against the in-process framework.

Contract: `install_compat_aliases()` makes `api.services.integrations.base`,
`api.services.workflow.node_data`, `api.services.workflow.node_specs._base` and
`api.services.workflow.node_specs.model_spec` importable, each exposing the names the reference
module has, backed by this SDK. The plugin server calls it only when the plugin's manifest asks
(`compat = true`), inside the plugin process; `import sdk` never installs it.
"""

from __future__ import annotations

import sys
import types

from . import _build, _contexts, _nodes, _package, _runtime, _spec

_ALIASES: dict[str, dict[str, object]] = {
    "api.services.integrations.base": {
        "IntegrationPackageSpec": _package.IntegrationPackageSpec,
        "IntegrationNodeRegistration": _package.IntegrationNodeRegistration,
        "IntegrationRuntimeSession": _runtime.IntegrationRuntimeSession,
        "IntegrationRuntimeContext": _contexts.IntegrationRuntimeContext,
        "IntegrationCompletionContext": _contexts.IntegrationCompletionContext,
        "register_package": _package.register_package,
    },
    "api.services.workflow.node_data": {"BaseNodeData": _nodes.BaseNodeData},
    "api.services.workflow.node_specs._base": {
        name: getattr(_spec, name)
        for name in (
            "NodeSpec",
            "PropertySpec",
            "PropertyType",
            "NodeCategory",
            "NodeExample",
            "GraphConstraints",
            "DisplayOptions",
            "PropertyOption",
        )
    },
    "api.services.workflow.node_specs.model_spec": {
        "node_spec": _nodes.node_spec,
        "spec_field": _nodes.spec_field,
        "build_spec": _build.build_spec,
    },
}


def install_compat_aliases() -> list[str]:
    """Install the alias modules (and their parent packages); return the names installed."""
    installed: list[str] = []
    for dotted, names in _ALIASES.items():
        parts = dotted.split(".")
        for depth in range(1, len(parts)):
            installed += _ensure_package(".".join(parts[:depth]))
        module = types.ModuleType(dotted, f"plugbox compatibility alias of {dotted}")
        module.__dict__.update(names)
        sys.modules[dotted] = module
        _link(dotted, module)
        installed.append(dotted)
    return installed


def _ensure_package(dotted: str) -> list[str]:
    if dotted in sys.modules:
        return []
    package = types.ModuleType(dotted, "plugbox compatibility alias package")
    package.__path__ = []  # a package, so submodules resolve through sys.modules
    sys.modules[dotted] = package
    _link(dotted, package)
    return [dotted]


def _link(dotted: str, module: types.ModuleType) -> None:
    parent, _, child = dotted.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
