"""HTTP layer: the state every route reads (plugin host, run store, limits).

Contract: `create_app` stores one `ApiState` on `app.state.plugbox`; routes get it through the
`api_state` dependency and call `ready()` before reading the registry, which loads specs once from
the spec cache (no plugin process when warm) and again only after `invalidate()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, Request

if TYPE_CHECKING:
    from .._host import PluginHost
    from .._registry import Registry
    from ..store import RunStore

MIB = 1024 * 1024
# The reference platform's own node types: known to validation, validated by the platform itself.
CORE_NODE_TYPES = frozenset(
    {"startCall", "endCall", "agentNode", "globalNode", "trigger", "webhook", "qa"}
)


@dataclass(frozen=True)
class ApiLimits:
    """Limits on proxied plugin requests; each protects the host from one misbehaving client."""

    max_body_bytes: int = 1 * MIB  # a route is for control traffic, not uploads
    max_definition_bytes: int = 8 * MIB  # a workflow definition; larger is 413 unread
    max_response_bytes: int = 8 * MIB  # a plugin route's answer; larger is 502
    max_header_count: int = 64  # more than any browser or SDK sends
    max_header_bytes: int = 16 * 1024  # total header size, as common reverse proxies allow
    route_timeout_s: float | None = None  # None: the plugin manifest's call deadline


@dataclass
class ApiState:
    """What the routes share. One per app."""

    plugins: PluginHost
    store: RunStore | None  # any backend: /ui and /readyz use only the protocol
    limits: ApiLimits
    core_node_types: frozenset[str] = CORE_NODE_TYPES
    worker: Any = None  # an `EmbeddedWorker` run by the embedding process, for `/readyz`
    _loaded: bool = False
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def registry(self) -> Registry:
        return self.plugins.registry

    async def ready(self) -> Registry:
        """The registry with specs loaded (from the cache when warm)."""
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self.plugins.registry.refresh()
                    self._loaded = True
        return self.plugins.registry

    @property
    def loaded(self) -> bool:
        return self._loaded

    def invalidate(self) -> None:
        self._loaded = False


def _api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.plugbox
    return state


ApiStateDep = Annotated[ApiState, Depends(_api_state)]
