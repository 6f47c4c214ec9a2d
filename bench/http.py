"""Benchmark: requests/s of the warm node-type listing, of a proxied plugin route, and of the same
route served in-process by FastAPI (the floor), in one run. Writes bench/results/http.json.

Requests go through httpx's ASGI transport with 16 in flight, so the figures compare the apps
(the proxy's extra hop included) without a load generator competing with the server over TCP.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the stdlib's `http`; drop its own folder from the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import tempfile
import time
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import arguments, metric, print_table, write_results
from host import HostConfig, PluginHost
from host.api import create_app

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "api_plugins"
IN_FLIGHT = 16


def inprocess_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "label": f"item {item_id}"}

    return app


async def rate(app: Any, path: str, total: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        assert (await client.get(path)).status_code == 200
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.get(path)
                assert response.status_code == 200

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(IN_FLIGHT):
                group.start_soon(worker)
        return total / (time.perf_counter() - started)


async def measure(quick: bool) -> dict[str, dict[str, object]]:
    total = 1000 if quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        config = HostConfig(
            plugins_root=FIXTURES, data_dir=Path(tmp), use_venvs=False, idle_timeout_s=None
        )
        async with PluginHost(config) as plugins:
            app = create_app(plugins)
            await app.state.plugbox.ready()
            node_types = await rate(app, "/api/v1/node-types", total)
            inprocess = await rate(inprocess_app(), "/items/7", total)
            proxied = await rate(app, "/api/v1/integrations/echo_routes/items/7", total)
    return {
        "node_types_rps": metric(node_types, "req/s", better="higher"),
        "inprocess_route_rps": metric(inprocess, "req/s", better="higher"),
        "proxied_route_rps": metric(proxied, "req/s", better="higher"),
        "proxied_to_inprocess_ratio": metric(proxied / inprocess, "x", 0.5, "higher"),
    }


def main() -> None:
    args = arguments(__doc__ or "")
    metrics = anyio.run(measure, args.quick)
    print_table("HTTP API throughput", metrics)  # type: ignore[arg-type]
    print(f"written: {write_results('http', metrics)}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
