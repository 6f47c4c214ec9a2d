"""Shared helpers for the operating tests: a host over the ops fixture plugins, the CLI."""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore
from sdk.protocol import CompletionContextWire, CompletionRunParams

REPO = Path(__file__).resolve().parents[2]
OPS_PLUGINS = REPO / "tests" / "fixtures" / "ops_plugins"


@asynccontextmanager
async def ops_host(data_dir: Path) -> AsyncIterator[PluginHost]:
    config = HostConfig(
        plugins_root=OPS_PLUGINS, data_dir=data_dir, use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            yield plugins


def chatty_params(*actions: str) -> CompletionRunParams:
    nodes = [
        {"id": f"n{i}", "type": "chatty", "data": {"name": "x", "action": action}}
        for i, action in enumerate(actions)
    ]
    return CompletionRunParams(nodes, CompletionContextWire(1, {}, {}, 1))


class RecordWaiter(logging.Handler):
    """An event set when a log record matching `predicate` arrives (stderr is read in the loop)."""

    def __init__(self, predicate: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__(logging.DEBUG)
        self.predicate = predicate
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.predicate(record):
            self.seen.set()

    async def wait(self, logger: str, seconds: float = 10.0) -> None:
        with anyio.fail_after(seconds):
            await self.seen.wait()
        logging.getLogger(logger).removeHandler(self)

    def attach(self, logger: str) -> RecordWaiter:
        logging.getLogger(logger).addHandler(self)
        return self


def plugbox(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "host.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def readline_within(process: subprocess.Popen[bytes], seconds: float) -> str:
    """One line of a child's stdout, or an AssertionError after `seconds` (never a hang)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + seconds
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no line within {seconds} s (so far: {line!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"stdout closed (so far: {line!r})")
        line += chunk
    return line.decode()


@asynccontextmanager
async def served(plugins: PluginHost, store: SQLiteRunStore) -> AsyncIterator[str]:
    """The app over `plugins` on a real HTTP server on 127.0.0.1; yields its base URL."""
    import uvicorn

    from host.api import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(plugins, store), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
