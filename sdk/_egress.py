"""Server layer: the egress forwarder — the plugin's bridge to the host's egress proxy.

Contract: when the host grants an egress allowlist, the plugin runs in its own network namespace
with no route out; `PLUGBOX_EGRESS_SOCKET` names the host proxy's unix socket and `HTTP(S)_PROXY`
point at `127.0.0.1:<PLUGBOX_EGRESS_PORT>`. `start_forwarder()` listens there (inside the
namespace) and relays each connection to the socket, so httpx, requests and urllib work
unmodified. One daemon thread accepts; each connection uses two relay threads. The proxy decides
what is allowed; this only carries bytes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

SOCKET_ENV = "PLUGBOX_EGRESS_SOCKET"
PORT_ENV = "PLUGBOX_EGRESS_PORT"


def start_forwarder() -> int | None:
    """Start the forwarder when the host asked for one; the port it listens on."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(os.environ.get(PORT_ENV, "3128"))))
    listener.listen(64)
    threading.Thread(target=_accept, args=(listener, path), daemon=True).start()
    return int(listener.getsockname()[1])


def _accept(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_relay, args=(source, sink), daemon=True).start()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
