"""Completion layer: which plugin owns each node of a run, resolved again for every job.

Contract: `resolve(run, plugins)` refreshes the registry when no plugin is loaded or some failed
to load (a cold cache plus a transient failure must not last a worker's life; loaded plugins come
from the spec cache, so this starts no process for them), then splits the run's nodes into work
per loaded completion plugin and nodes of plugins that failed to load (the caller drops plugins
whose nodes are all disabled). A node's type is
attributed to a plugin that failed to load by the plugin's last cached spec, or by the plugin's
name or package when the type carries it; nodes of unknown types that cannot be attributed are
core nodes (no plugin's business) and listed in `unattributed` so a caller can say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from sdk.protocol import SpecResult, iter_nodes

from ..store import WorkflowRun

if TYPE_CHECKING:
    from .._host import PluginHost

logger = logging.getLogger("plugbox.completion")


@dataclass
class Resolution:
    work: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # plugin -> its nodes
    unloaded: dict[str, tuple[list[dict[str, Any]], str]] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)  # node ids of unknown types


async def resolve(run: WorkflowRun, plugins: PluginHost) -> Resolution:
    registry = plugins.registry
    if not registry.packages() or registry.errors:
        await registry.refresh()
    capable = set(registry.packages_with_completion())
    failed = {error.name: error.message for error in registry.errors}
    cached = _cached_types(plugins, failed) if failed else {}
    grouped: dict[str, list[dict[str, Any]]] = {}
    unloaded: dict[str, list[dict[str, Any]]] = {}
    result = Resolution()
    for node in iter_nodes(run.workflow_definition):
        type_name = str(node.get("type"))
        owner = registry.package_for_type(type_name)
        if owner in capable:
            grouped.setdefault(str(owner), []).append(node)
        elif owner is None and (culprit := _culprit(type_name, failed, cached, plugins)):
            unloaded.setdefault(culprit, []).append(node)
        elif owner is None and failed:
            result.unattributed.append(str(node.get("id")))
    result.work = grouped
    result.unloaded = {name: (nodes, failed[name]) for name, nodes in unloaded.items()}
    return result


def _culprit(
    type_name: str, failed: dict[str, str], cached: dict[str, str], plugins: PluginHost
) -> str | None:
    if type_name in cached:
        return cached[type_name]
    for name in failed:
        if type_name in (name, plugins.manifests[name].package):
            return name
    return None


def _cached_types(plugins: PluginHost, failed: dict[str, str]) -> dict[str, str]:
    """node type -> plugin, from any cached spec of a plugin that failed to load now."""
    types: dict[str, str] = {}
    cache = plugins.config.data_dir / "spec-cache"
    for name in failed:
        for path in sorted(cache.glob(f"{name}-*.json")):
            try:
                spec = msgspec.json.decode(path.read_bytes(), type=SpecResult)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            types.update(dict.fromkeys((node.type_name for node in spec.nodes), name))
    return types
