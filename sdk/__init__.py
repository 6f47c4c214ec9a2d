"""plugbox SDK: the author-facing API of an integration package (the whole of it).

Authors write node models, specs, registrations, runtime sessions and completion handlers exactly as
the in-process integrations contract describes; `python -m sdk.serve <package>` serves the package
to the plugbox host over the wire (`sdk.protocol`). `sdk.testing` has helpers for plugin tests.
"""

from ._build import build_spec as build_spec
from ._contexts import IntegrationCompletionContext as IntegrationCompletionContext
from ._contexts import IntegrationRuntimeContext as IntegrationRuntimeContext
from ._errors import AuthoringError as AuthoringError
from ._nodes import BaseNodeData as BaseNodeData
from ._nodes import node_spec as node_spec
from ._nodes import spec_field as spec_field
from ._package import IntegrationNodeRegistration as IntegrationNodeRegistration
from ._package import IntegrationPackageSpec as IntegrationPackageSpec
from ._package import PackageRegistry as PackageRegistry
from ._package import register_package as register_package
from ._runtime import IntegrationRuntimeSession as IntegrationRuntimeSession
from ._spec import DisplayOptions as DisplayOptions
from ._spec import GraphConstraints as GraphConstraints
from ._spec import NodeCategory as NodeCategory
from ._spec import NodeExample as NodeExample
from ._spec import NodeMigration as NodeMigration
from ._spec import NodeSpec as NodeSpec
from ._spec import PropertyOption as PropertyOption
from ._spec import PropertySpec as PropertySpec
from ._spec import PropertyType as PropertyType
from ._version import SDK_VERSION as SDK_VERSION

__all__ = [
    "SDK_VERSION",
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
    "NodeMigration",
    "NodeSpec",
    "PackageRegistry",
    "PropertyOption",
    "PropertySpec",
    "PropertyType",
    "build_spec",
    "node_spec",
    "register_package",
    "spec_field",
]
