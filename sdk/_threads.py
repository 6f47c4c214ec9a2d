"""Server layer: author functions that are not coroutines run in worker threads.

Contract: `run_in_thread(function, *args)` runs `function(*args)` in anyio's worker thread pool
and returns its result. A thread cannot be stopped: when the call is cancelled (the host's
`$/cancel` after its deadline, or the host going away) the await ends at once and a watchdog
thread gives the function `OVERRUN_GRACE_S` to return; if it is still running then, the process
logs which function overran and exits with `EXIT_OVERRUN`, and the host's supervisor starts a
fresh one on the next call. Without this a spinning sync handler burns the plugin's CPU (and its
quota) after its caller has given up, until RLIMIT_CPU (issue #14). Coroutine functions are not
affected: cancelling them cancels them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

OVERRUN_GRACE_S = 2.0  # a cancelled sync function has this long to return before the exit
EXIT_OVERRUN = 75  # the exit status the supervisor sees (EX_TEMPFAIL: a restart fixes it)
logger = logging.getLogger("plugbox.sdk.threads")


async def run_in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)` in a worker thread; see the module docstring for cancellation."""
    returned = threading.Event()

    def body() -> Any:
        try:
            return function(*args)
        finally:
            returned.set()

    try:
        return await anyio.to_thread.run_sync(body, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        _watch(_name(function), returned)
        raise


def _watch(name: str, returned: threading.Event) -> None:
    """Exit the process unless `returned` is set within the grace (from a thread of its own, so
    a loop blocked by the same author code cannot keep it from firing)."""

    def watchdog() -> None:
        if returned.wait(OVERRUN_GRACE_S):
            return
        logger.error(
            "%s overran its call's deadline: still running %g s after the call was cancelled; "
            "the plugin process exits so the host restarts it",
            name,
            OVERRUN_GRACE_S,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(EXIT_OVERRUN)  # the thread cannot be stopped; threads block a normal exit

    threading.Thread(target=watchdog, name="plugbox-overrun-watchdog", daemon=True).start()


def _name(function: Callable[..., Any]) -> str:
    inner = getattr(function, "func", function)  # a functools.partial
    module = getattr(inner, "__module__", None) or "?"
    return f"{module}.{getattr(inner, '__qualname__', repr(inner))}"
