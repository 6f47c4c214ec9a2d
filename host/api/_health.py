"""HTTP layer: liveness (`GET /healthz`) and readiness (`GET /readyz`) for orchestrators.

Contract: `/healthz` answers 200 while the process serves requests, and does nothing else (a
liveness probe that touches plugins or disks restarts healthy hosts). `/readyz` answers 200 only
when every check passes, 503 otherwise, with each check's verdict in the body: the registry has
loaded the plugins' specs; the embedded completion worker, when one is attached to the app
(`ApiState.worker`), is running; the run store, when there is one, takes a write transaction
within `STORE_CHECK_S`. Plugins are not started for it: a lazily started plugin is ready.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..store import StoreError
from ._state import ApiState, ApiStateDep

router = APIRouter(tags=["health"])
STORE_CHECK_S = 2.0  # a store that cannot start a write transaction within this is not ready


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: ApiStateDep) -> JSONResponse:
    """Whether this host can take traffic: registry, worker and store, each with its verdict."""
    checks = {
        "registry": _registry(state),
        "worker": _worker(state),
        "store": await _store(state),
    }
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def _registry(state: ApiState) -> dict[str, Any]:
    if not state.loaded:
        return {"ok": False, "detail": "plugin specs not loaded yet"}
    loaded = len(state.registry.packages())
    return {
        "ok": True,
        "detail": f"{loaded} plugin(s) loaded",
        "errors": len(state.registry.errors),
    }


def _worker(state: ApiState) -> dict[str, Any]:
    worker = state.worker
    if worker is None:
        return {"ok": True, "detail": "no embedded worker in this process"}
    alive = bool(getattr(worker, "alive", False))
    return {"ok": alive, "detail": "running" if alive else "stopped"}


async def _store(state: ApiState) -> dict[str, Any]:
    store = state.store
    if store is None:
        return {"ok": True, "detail": "no run store attached"}

    try:
        with anyio.fail_after(STORE_CHECK_S):
            await store.check_writable()
    except TimeoutError:
        return {"ok": False, "detail": f"no write lock within {STORE_CHECK_S:g} s"}
    except StoreError as exc:  # StoreError: closed, corrupt, read-only
        return {"ok": False, "detail": f"not writable: {exc}"}
    return {"ok": True, "detail": "writable"}
