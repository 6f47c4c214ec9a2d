"""plugbox SDK: the author-facing API of an integration package (the whole of it).

Authors write node models, specs, registrations, runtime sessions and completion handlers exactly as
the in-process integrations contract describes; `python -m sdk.serve <package>` serves the package
to the plugbox host over the wire (`sdk.protocol`). `sdk.testing` has helpers for plugin tests.

The names below are imported on first use (PEP 562), so `import sdk.protocol` — the host's only
import of the SDK — loads neither pydantic nor the authoring layer.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from ._build import build_spec as build_spec
    from ._contexts import IntegrationCompletionContext as IntegrationCompletionContext
    from ._contexts import IntegrationRuntimeContext as IntegrationRuntimeContext
    from ._errors import AuthoringError as AuthoringError
    from ._nodes import BaseNodeData as BaseNodeData
    from ._nodes import NodeSpecMetadata as NodeSpecMetadata
    from ._nodes import node_spec as node_spec
    from ._nodes import spec_field as spec_field
    from ._package import IntegrationNodeRegistration as IntegrationNodeRegistration
    from ._package import IntegrationPackageSpec as IntegrationPackageSpec
    from ._package import PackageRegistry as PackageRegistry
    from ._package import register_package as register_package
    from ._runtime import IntegrationRuntimeSession as IntegrationRuntimeSession
    from ._shadow import ProcessorProxy as ProcessorProxy
    from ._shadow import ShadowTask as ShadowTask
    from ._spec import SPEC_VERSION as SPEC_VERSION
    from ._spec import DisplayOptions as DisplayOptions
    from ._spec import GraphConstraints as GraphConstraints
    from ._spec import NodeCategory as NodeCategory
    from ._spec import NodeExample as NodeExample
    from ._spec import NodeSpec as NodeSpec
    from ._spec import NumberInputOptions as NumberInputOptions
    from ._spec import PropertyLayoutOptions as PropertyLayoutOptions
    from ._spec import PropertyOption as PropertyOption
    from ._spec import PropertyRendererOptions as PropertyRendererOptions
    from ._spec import PropertySpec as PropertySpec
    from ._spec import PropertyType as PropertyType
    from ._spec import evaluate_display_options as evaluate_display_options
    from ._version import SDK_VERSION as SDK_VERSION

_EXPORTS = {
    "build_spec": "._build",
    "IntegrationCompletionContext": "._contexts",
    "IntegrationRuntimeContext": "._contexts",
    "AuthoringError": "._errors",
    "BaseNodeData": "._nodes",
    "NodeSpecMetadata": "._nodes",
    "node_spec": "._nodes",
    "spec_field": "._nodes",
    "IntegrationNodeRegistration": "._package",
    "IntegrationPackageSpec": "._package",
    "PackageRegistry": "._package",
    "register_package": "._package",
    "IntegrationRuntimeSession": "._runtime",
    "ProcessorProxy": "._shadow",
    "ShadowTask": "._shadow",
    "SPEC_VERSION": "._spec",
    "DisplayOptions": "._spec",
    "GraphConstraints": "._spec",
    "NodeCategory": "._spec",
    "NodeExample": "._spec",
    "NodeSpec": "._spec",
    "NumberInputOptions": "._spec",
    "PropertyLayoutOptions": "._spec",
    "PropertyOption": "._spec",
    "PropertyRendererOptions": "._spec",
    "PropertySpec": "._spec",
    "PropertyType": "._spec",
    "evaluate_display_options": "._spec",
    "SDK_VERSION": "._version",
}


def __getattr__(name: str) -> typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "SDK_VERSION",
    "SPEC_VERSION",
    "AuthoringError",
    "BaseNodeData",
    "DisplayOptions",
    "GraphConstraints",
    "IntegrationCompletionContext",
    "IntegrationNodeRegistration",
    "IntegrationPackageSpec",
    "IntegrationRuntimeContext",
    "IntegrationRuntimeSession",
    "NodeCategory",
    "NodeExample",
    "NodeSpec",
    "NodeSpecMetadata",
    "NumberInputOptions",
    "PackageRegistry",
    "ProcessorProxy",
    "PropertyLayoutOptions",
    "PropertyOption",
    "PropertyRendererOptions",
    "PropertySpec",
    "PropertyType",
    "ShadowTask",
    "build_spec",
    "evaluate_display_options",
    "node_spec",
    "register_package",
    "spec_field",
]
