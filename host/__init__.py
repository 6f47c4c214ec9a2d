"""plugbox host: discovers plugins, runs each in its own sandboxed process, and serves the contract.

`PluginHost` is the entry point; `host.api.create_app` builds the HTTP API over it; `host.runtime`
bridges a pipecat call to the plugins; `host.completion` runs post-call work.
"""

from ._host import HostConfig as HostConfig
from ._host import PluginHost as PluginHost
from ._host import UnknownPlugin as UnknownPlugin
from ._manifest import DiscoveryError as DiscoveryError
from ._manifest import Manifest as Manifest
from ._process import LaunchConfig as LaunchConfig
from ._registry import PackageInfo as PackageInfo
from ._registry import PluginLoadError as PluginLoadError
from ._registry import Registry as Registry
from ._supervisor import PluginHandle as PluginHandle
from ._supervisor import ProcessState as ProcessState
from .sandbox import SandboxPolicy as SandboxPolicy

__all__ = [
    "DiscoveryError",
    "HostConfig",
    "LaunchConfig",
    "Manifest",
    "PackageInfo",
    "PluginHandle",
    "PluginHost",
    "PluginLoadError",
    "ProcessState",
    "Registry",
    "SandboxPolicy",
    "UnknownPlugin",
]
