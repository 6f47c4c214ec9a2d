"""HTTP layer: plugin routes also served at the reference platform's paths, per operator grant.

Contract: in the in-process platform a package's routers are mounted at `/api/v1` + their own
prefix, and its UIs call them there. A plugin whose grant says `reference_routes = true` gets its
declared routes served at that path too (they stay at `/api/v1/integrations/<package>/...`).
Conflicts are refused, never resolved by order of arrival: a route whose first segment is one of
the host's own (`workflows`, `node-types`, `integrations`, ...) is not mounted, and a route template
that two granted plugins both declare is mounted for neither; each refusal is logged once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._registry import Registry
from ._proxy import PluginRoutes, Refused
from ._state import ApiState

logger = logging.getLogger("plugbox.api.routes")
PREFIX = "/api/v1"
_PARAMETER = re.compile(r"\{[^}/]*\}")


@dataclass(frozen=True)
class _Route:
    plugin: str
    template: str
    pattern: re.Pattern[str]


def _compile(template: str) -> re.Pattern[str]:
    parts = _PARAMETER.split(template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "/?$")


class ReferenceRoutes(PluginRoutes):
    """The ASGI app mounted at `/api/v1` (after the host's routes): granted plugins' routes."""

    def __init__(self, state: ApiState, reserved: Iterable[str]) -> None:
        super().__init__(state)
        self.reserved = frozenset(reserved)
        self._refusals_logged: set[tuple[str, str]] = set()

    def target(self, registry: Registry, path: str) -> tuple[str, str]:
        for route in self.table(registry):
            if route.pattern.match(path):
                return route.plugin, path
        raise Refused(404, f"no route at {PREFIX}{path}")

    def table(self, registry: Registry) -> list[_Route]:
        """The granted plugins' routes that conflict with nothing."""
        grants = self.state.plugins.grants
        claims: dict[str, list[str]] = {}
        for name in registry.packages_with_routes():
            info = registry.get_package(name)
            if info is None or not grants.for_plugin(name).reference_routes:
                continue
            for route in info.spec.routes:
                first = route.path.strip("/").split("/")[0]
                if first in self.reserved:
                    self._refuse(name, route.path, f"`{first}` belongs to the host")
                    continue
                claims.setdefault(_PARAMETER.sub("{}", route.path), []).append(name)
        table = []
        for shape, owners in sorted(claims.items()):
            if len(set(owners)) > 1:
                for owner in owners:
                    self._refuse(owner, shape, f"also declared by {sorted(set(owners) - {owner})}")
                continue
            table.append(_Route(owners[0], shape, _compile(shape)))
        return table

    def _refuse(self, plugin: str, path: str, why: str) -> None:
        if (plugin, path) not in self._refusals_logged:
            self._refusals_logged.add((plugin, path))
            logger.warning(
                "plugin %r: route %s is not served at %s%s: %s", plugin, path, PREFIX, path, why
            )
