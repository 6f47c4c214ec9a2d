"""Server layer: what `python -m sdk.serve <import-package>` runs once `sdk.serve` let it in.

Contract: refuses to run without the host's cookie (one line on stderr, exit 2). Claims stdio
before importing any plugin code, installs the in-process import aliases when `PLUGBOX_COMPAT=1`,
imports the package (an import crash is reported to the host by failing `initialize` with the
traceback), then serves the wire until `shutdown` or stdin EOF, which is how a plugin dies with
its host, on uvloop when installed. Environment: PLUGBOX_COOKIE, PLUGBOX_COMPAT,
PLUGBOX_PLUGIN_NAME, PLUGBOX_LOG_LEVEL, PLUGBOX_PACKAGE_VERSION, PLUGBOX_MAX_FRAME_SIZE,
PLUGBOX_LOOP (`asyncio` forces asyncio's own loop), PLUGBOX_EGRESS_SOCKET/PORT (the egress
forwarder, `_egress`), PLUGBOX_ZYGOTE_FD (the host's control socket: this process imports the
plugin once and forks a worker per start, `_zygote`).

This module is imported with the cyclic garbage collector off (`sdk.serve`); `main` turns it back
on, with everything the SDK imported moved to the permanent generation, before any plugin code
runs: the author's import and handlers see the collector as in any Python process.
"""

from __future__ import annotations

import gc
import logging
import os
import sys

import anyio
import anyio.lowlevel

from ._compat import install_compat_aliases
from ._egress import start_forwarder
from ._logging import JsonLinesHandler, configure_logging
from ._loop import preload_loop, run
from ._package import IntegrationPackageSpec, load_package
from ._server import PluginServer
from ._stdio import WireFds, claim_stdio, open_wire
from ._zygote import control_socket, run_zygote
from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    PLUGIN_COOKIE_ENV,
    PLUGIN_COOKIE_VALUE,
    RpcSession,
    SecretScrubber,
)

COOKIE_ENV = PLUGIN_COOKIE_ENV
COOKIE_VALUE = PLUGIN_COOKIE_VALUE
NOT_BY_HAND = (
    "this is a plugbox plugin; the plugbox host starts it "
    f"(missing or wrong {COOKIE_ENV}; see docs/protocol.md)"
)
_REPLY_CHECKPOINTS = 3  # loop turns that let the `shutdown` reply reach the pipe before closing

logger = logging.getLogger("plugbox.sdk.serve")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if os.environ.get(COOKIE_ENV) != COOKIE_VALUE:
        print(NOT_BY_HAND, file=sys.stderr)
        return 2
    if len(args) != 1:
        print("usage: python -m sdk.serve <import-package>", file=sys.stderr)
        return 2
    ctl = control_socket()  # set: this process is the plugin's zygote (sdk/_zygote.py)
    wire = claim_stdio()  # before any plugin code can print
    start_forwarder()  # before plugin code: its HTTP clients find the proxy already there
    redactor = SecretScrubber()
    configure_logging(redactor, os.environ.get("PLUGBOX_LOG_LEVEL", "INFO"))
    preload_loop()  # the event loop's modules too (a zygote's workers then import nothing)
    collect_again()
    code = 0
    if ctl is None:
        package, error = import_plugin(args[0])
        run(serve_package, package, error, wire, redactor)  # on uvloop when installed (_loop)
    else:
        os.close(wire.read_fd)  # each worker gets its own wire from the host
        os.close(wire.write_fd)
        package, error = import_plugin(args[0])

        def worker(read_fd: int, write_fd: int) -> None:
            run(serve_package, package, error, WireFds(read_fd, write_fd), redactor)
            logging.shutdown()

        code = run_zygote(ctl, worker)
    logging.shutdown()
    # Worker threads still running an author's sync handler must not keep a dead plugin alive.
    os._exit(code)


def collect_again() -> None:
    """Turn the collector back on (`sdk.serve` turned it off for the SDK's imports). What those
    imports made lives as long as the process, so it moves to the permanent generation first:
    no collection ever walks it, and none is owed for the allocations made meanwhile."""
    gc.freeze()
    gc.enable()


def import_plugin(import_name: str) -> tuple[IntegrationPackageSpec | None, BaseException | None]:
    if os.environ.get("PLUGBOX_COMPAT") == "1":
        install_compat_aliases()
    try:
        return load_package(import_name), None
    except BaseException as exc:  # the import boundary: report to the host, never die silently
        logger.error("importing %r failed", import_name, exc_info=exc)
        return None, exc


async def serve_package(
    package: IntegrationPackageSpec | None,
    error: BaseException | None,
    wire: WireFds,
    redactor: SecretScrubber,
) -> None:
    """Serve an imported package (or its import error) on the wire fds until shutdown or EOF."""
    max_frame = int(os.environ.get("PLUGBOX_MAX_FRAME_SIZE", DEFAULT_MAX_FRAME_SIZE))
    session = RpcSession(
        await open_wire(wire, max_frame_size=max_frame),
        name=os.environ.get("PLUGBOX_PLUGIN_NAME", "host"),
        max_frame_size=max_frame,
    )
    server = PluginServer(
        package,
        import_error=error,
        redactor=redactor,
        package_version=os.environ.get("PLUGBOX_PACKAGE_VERSION", "0.0.0"),
    )
    server.attach(session)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JsonLinesHandler):
            handler.attach_wire(session)  # the loop's log records now travel as `log`
    async with anyio.create_task_group() as group:
        group.start_soon(_close_on_shutdown, server, session)
        await session.run()  # returns at stdin EOF, or once `shutdown` closed the session
        group.cancel_scope.cancel()


async def _close_on_shutdown(server: PluginServer, session: RpcSession) -> None:
    await server.shutdown_requested.wait()
    for _ in range(_REPLY_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
    await session.aclose()
