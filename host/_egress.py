"""Egress layer: the host-side proxy that is a sandboxed plugin's only way out.

Contract: a plugin granted `network = ["api.example.com:443", "*.slack.com:443"]` runs in its own
network namespace (no route out) with `HTTP(S)_PROXY` pointing at the SDK's forwarder, which
bridges to this proxy's unix socket for that plugin (`EgressProxy.listen(plugin, allowlist)`).
The proxy speaks HTTP CONNECT (https) and absolute-form forwarding (plain http) and admits a
destination only when it matches a granted `host:port` (a `*.` wildcard matches sub-domains).
The check runs before any DNS lookup or connect, so a refused destination is never contacted.
A granted *name* must resolve to public addresses only: loopback, link-local, private and other
non-global addresses are reachable only when granted as an IP literal. A refusal is a 403 with
`X-Plugbox-Egress: denied`, logged and counted per plugin (`denied`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ._manifest import parse_destination

logger = logging.getLogger("plugbox.egress")
HEAD_LIMIT = 64 * 1024  # a request head larger than this is refused
CONNECT_TIMEOUT_S = 10.0
FORWARDER_PORT = 3128  # where the SDK's forwarder listens inside the plugin's namespace
PROXY_ENV_KEYS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def egress_environment(directory: Path) -> dict[str, str]:
    """What a plugin with an allowlist gets: the socket for its forwarder, and the proxy vars."""
    proxy = f"http://127.0.0.1:{FORWARDER_PORT}"
    env = {
        "PLUGBOX_EGRESS_SOCKET": str(directory / "proxy.sock"),
        "PLUGBOX_EGRESS_PORT": str(FORWARDER_PORT),
        "NO_PROXY": "",
        "no_proxy": "",
    }
    return env | dict.fromkeys(PROXY_ENV_KEYS, proxy)


class Denied(Exception):
    """A destination the plugin was not granted (or that resolves where it may not go)."""


def _matches(host: str, port: int, allowlist: Sequence[str]) -> str | None:
    """The granted entry admitting host:port, if any."""
    for entry in allowlist:
        pattern, granted_port = parse_destination(entry)
        if granted_port != port:
            continue
        if pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return entry
    return None


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve_allowed(host: str, port: int, allowlist: Sequence[str]) -> list[str]:
    """Addresses to connect to for host:port, or `Denied` (checked before any lookup)."""
    host = host.lower().strip("[]")
    entry = _matches(host, port, allowlist)
    if entry is None:
        raise Denied(f"{host}:{port} is not granted")
    literal = _literal(host)
    if literal is not None:
        return [str(literal)]  # granted as this very address: the operator chose it
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)
    addresses = sorted({str(info[4][0]) for info in infos})
    inner = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    if inner:
        raise Denied(f"{host} resolves to non-public {inner}; grant the address itself")
    return addresses


class EgressProxy:
    """One per host: a unix-socket listener per plugin, each with that plugin's allowlist."""

    def __init__(self) -> None:
        self.denied: Counter[str] = Counter()
        self.allowed: Counter[str] = Counter()
        self._root: Path | None = None
        self._servers: dict[str, asyncio.base_events.Server] = {}

    async def listen(self, plugin: str, allowlist: Sequence[str]) -> Path:
        """The socket directory for `plugin` (bound into its sandbox); idempotent per plugin."""
        if self._root is None:
            # Short on purpose: a unix socket path must fit in 108 bytes.
            self._root = Path(tempfile.mkdtemp(prefix="plugbox-egress-"))
            self._root.chmod(0o755)
        directory = self._root / plugin
        if plugin in self._servers:
            return directory
        directory.mkdir(mode=0o755, exist_ok=True)
        path = directory / "proxy.sock"
        allowed = tuple(allowlist)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(plugin, allowed, reader, writer)

        self._servers[plugin] = await asyncio.start_unix_server(handle, path=str(path))
        path.chmod(0o666)  # the plugin runs as its own uid
        return directory

    async def aclose(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def _serve(
        self,
        plugin: str,
        allowlist: Sequence[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            method, target, rest = _parse_head(head)
            host, port, forwarded = _destination(method, target, rest)
            addresses = await resolve_allowed(host, port, allowlist)
        except (Denied, ValueError, OSError) as exc:
            self.denied[plugin] += 1
            logger.warning("egress denied for plugin %r: %s", plugin, exc)
            body = f"plugbox egress proxy: {exc} for plugin {plugin!r}\n".encode()
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nX-Plugbox-Egress: denied\r\n"
                b"Content-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        await self._relay(plugin, addresses, port, forwarded, reader, writer)

    async def _relay(
        self,
        plugin: str,
        addresses: list[str],
        port: int,
        forwarded: bytes | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                upstream_reader, upstream_writer = await asyncio.open_connection(addresses[0], port)
        except (OSError, TimeoutError) as exc:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
            logger.info("egress for plugin %r: upstream failed: %s", plugin, exc)
            writer.close()
            return
        self.allowed[plugin] += 1
        if forwarded is None:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream_writer.write(forwarded)
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(reader, upstream_writer))
            group.create_task(_pipe(upstream_reader, writer))


def _parse_head(head: bytes) -> tuple[str, str, bytes]:
    if len(head) > HEAD_LIMIT:
        raise ValueError("request head too large")
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3:
        raise ValueError("malformed request line")
    return parts[0].upper(), parts[1], rest


def _destination(method: str, target: str, rest: bytes) -> tuple[str, int, bytes | None]:
    """(host, port, the request to send upstream; None for CONNECT)."""
    if method == "CONNECT":
        host, port = _split_authority(target, 443)
        return host, port, None
    if not target.startswith("http://"):
        raise ValueError("only CONNECT and absolute http:// requests are proxied")
    authority, _, path = target[len("http://") :].partition("/")
    host, port = _split_authority(authority, 80)
    line = f"{method} /{path} HTTP/1.1\r\n".encode("latin-1")
    return host, port, line + rest


def _split_authority(authority: str, default: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail.lstrip(":")
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    port = int(port_text) if port_text else default
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad destination {authority!r}")
    return host, port


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()
