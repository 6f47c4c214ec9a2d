"""HTTP layer: the FastAPI application factory a platform mounts or `plugbox serve` runs.

Contract: `create_app(plugins, store)` returns an app with the node-type listing, workflow
validation and masking, proxied plugin routes (also at the reference's `/api/v1/<prefix>` for
plugins granted `reference_routes`), status, restart, health and readiness probes and metrics,
public run artifacts, and the operator's dashboard at `/ui`. The
OpenAPI document includes each plugin's routes, taken from the route tables and OpenAPI fragments
the plugins declare in their spec (no plugin code runs in the host).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import (
    _health,
    _node_types,
    _observability,
    _proxy,
    _public,
    _reference_routes,
    _runs,
    _ui,
    _workflows,
)
from ._auth import TokenAuth
from ._body import JsonBodyGuard
from ._state import CORE_NODE_TYPES, ApiLimits, ApiState

if TYPE_CHECKING:
    from .._host import PluginHost
    from .._registry import Registry
    from ..store import RunStore

API_TITLE = "plugbox"
API_VERSION = "1"


def create_app(
    plugins: PluginHost,
    store: RunStore | None = None,
    *,
    limits: ApiLimits | None = None,
    core_node_types: Iterable[str] = CORE_NODE_TYPES,
    token: str | None = None,
) -> FastAPI:
    """Build the plugbox API over a running `PluginHost` (and a run store for public artifacts).

    `core_node_types` are the platform's own node types: validation knows them without a plugin.
    `token`: the bearer token every non-public endpoint requires (`_auth.py`); None leaves the
    API open, for a platform that mounts it behind its own authentication.
    """
    state = ApiState(
        plugins,
        store,
        limits or ApiLimits(),
        core_node_types=frozenset(core_node_types),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.ready()  # load specs before the first request, so OpenAPI is complete
        yield

    app = FastAPI(title=API_TITLE, version=API_VERSION, lifespan=lifespan)
    app.state.plugbox = state
    for module in (_node_types, _workflows, _observability, _health, _public, _ui, _runs):
        app.include_router(module.router)
    app.mount(_proxy.PREFIX, _proxy.PluginRoutes(state))
    if any(grant.reference_routes for grant in plugins.grants.plugins.values()):
        _mount_reference_routes(app, state)
    app.add_middleware(JsonBodyGuard, max_bytes=state.limits.max_definition_bytes)
    if token is not None:
        _require_token(app, token)
    app.openapi = lambda: _openapi_with_plugins(app, state)  # type: ignore[method-assign]
    return app


def _mount_reference_routes(app: FastAPI, state: ApiState) -> None:
    """Granted plugins' routes at the reference's paths; the first segments of the host's own
    routes there are reserved, so a plugin can never shadow one of them."""
    reserved = {
        path.split("/")[3]
        for route in app.routes
        if (path := str(getattr(route, "path", ""))).startswith(_reference_routes.PREFIX + "/")
    }
    app.mount(_reference_routes.PREFIX, _reference_routes.ReferenceRoutes(state, reserved))


def _require_token(app: FastAPI, token: str) -> None:
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    app.add_middleware(TokenAuth, token=token)  # added last: it runs first


def _openapi_with_plugins(app: FastAPI, state: ApiState) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    if state.loaded:  # cached only once the plugins' route tables are in
        _merge_plugin_paths(schema, state.registry)
        app.openapi_schema = schema
    return schema


def _merge_plugin_paths(schema: dict[str, Any], registry: Registry) -> None:
    """Add every plugin's declared paths under its mount point, with namespaced components."""
    paths = schema.setdefault("paths", {})
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in registry.packages_with_routes():
        info = registry.get_package(name)
        fragment = (info.spec.openapi if info is not None else None) or {}
        renamed = _namespace_refs(fragment, f"{name}__")
        for path, operations in (renamed.get("paths") or {}).items():
            paths[f"{_proxy.PREFIX}/{name}{path}"] = operations
        for component, body in ((renamed.get("components") or {}).get("schemas") or {}).items():
            schemas[f"{name}__{component}"] = body


def _namespace_refs(value: Any, prefix: str) -> Any:
    """Rewrite `#/components/schemas/X` references to `X` prefixed with the plugin's name."""
    marker = "#/components/schemas/"
    if isinstance(value, dict):
        return {
            key: (
                marker + prefix + item[len(marker) :]
                if key == "$ref" and isinstance(item, str) and item.startswith(marker)
                else _namespace_refs(item, prefix)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_namespace_refs(item, prefix) for item in value]
    return value
