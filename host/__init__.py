"""Host layer, the public face: discovers plugins, runs each sandboxed, and serves the contract.

`PluginHost` is the entry point; `host.api.create_app` builds the HTTP API over it; `host.runtime`
bridges a pipecat call to the plugins; `host.completion` runs post-call work.

A platform's calls are also importable from here (loaded on first use, so `import host` stays
light): `open_call` (the call's sessions, an `async with`) and `finish_call` at its end,
`run_integrations` (embedded) or `enqueue_run_integrations` (Redis) after it, `create_app` for the
HTTP API, `SQLiteRunStore` for runs, `Settings` for the `PLUGBOX_*` environment.
"""

from importlib import import_module as _import_module
from typing import Any as _Any

from ._host import HostConfig as HostConfig
from ._host import PluginHost as PluginHost
from ._host import UnknownPlugin as UnknownPlugin
from ._lifecycle import ProcessState as ProcessState
from ._manifest import DiscoveryError as DiscoveryError
from ._manifest import Manifest as Manifest
from ._process import LaunchConfig as LaunchConfig
from ._registry import PackageInfo as PackageInfo
from ._registry import PluginLoadError as PluginLoadError
from ._registry import Registry as Registry
from ._supervisor import PluginHandle as PluginHandle
from .sandbox import SandboxPolicy as SandboxPolicy

# Platform-facing names, imported on first access (pipecat bridge, FastAPI app, run store).
_LAZY = {
    "open_call": "host.runtime",
    "finish_call": "host.runtime",
    "run_integrations": "host.completion",
    "enqueue_run_integrations": "host.completion",
    "SQLiteRunStore": "host.completion",
    "create_app": "host.api",
    "Settings": "host._settings",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'host' has no attribute {name!r}")
    return getattr(_import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "SQLiteRunStore",
    "SandboxPolicy",
    "Settings",
    "UnknownPlugin",
    "create_app",
    "enqueue_run_integrations",
    "finish_call",
    "open_call",
    "run_integrations",
]
