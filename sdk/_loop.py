"""Server layer: the plugin process's event loop — uvloop when installed, asyncio's own otherwise.

Contract: `run(func, *args)` runs `func(*args)` to completion under anyio's asyncio backend, on
uvloop when it can be imported (a dependency of the SDK on Linux) unless `PLUGBOX_LOOP=asyncio`
asks for the standard loop. `loop_name()` says which one `run` would use. Everything above the
loop is written against asyncio's interface, so the protocol behaves the same on both; libuv's
loop just costs less per message (bench/rpc.py measures both).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
LOOP_ENV = "PLUGBOX_LOOP"


def loop_name() -> str:
    """`uvloop` or `asyncio`: the loop `run` uses in this process."""
    if os.environ.get(LOOP_ENV, "auto") == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run `func(*args)` on the plugin's loop (see the module docstring)."""
    options = {"use_uvloop": loop_name() == "uvloop"}
    return anyio.run(func, *args, backend="asyncio", backend_options=options)


def preload_loop() -> None:
    """Import what `run` needs before a fork (a zygote's workers then import nothing)."""
    import anyio._backends._asyncio  # noqa: F401

    if loop_name() == "uvloop":
        import uvloop  # noqa: F401
