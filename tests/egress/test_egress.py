"""Egress allowlist: a plugin reaches only what the operator granted, through the host's proxy.

Each plugin runs in its own network namespace. The probe (run inside the plugin at import) uses
urllib with the proxy variables the host set, and also tries a direct connection. Nothing here
leaves this machine: the outside address is TEST-NET-1 (192.0.2.1), refused by the proxy before
any connect, which the 403 with `X-Plugbox-Egress: denied` proves.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._egress import Denied, resolve_allowed
from host._grants import Grants, PluginGrant
from host.sandbox import probe_layers

LAYERS = {layer.name: layer for layer in probe_layers()}
REDIS = shutil.which("redis-server")
pytestmark = [
    pytest.mark.skipif(not LAYERS["bwrap"].available, reason="needs the bubblewrap layer"),
    pytest.mark.skipif(REDIS is None, reason="redis-server not installed (tools/system-deps.sh)"),
]
OUTSIDE = "192.0.2.1:80"  # TEST-NET-1: documentation only, never routed

PROBE = '''"""Egress probe: what this plugin reaches, tried from inside, written to probe.json."""

import json, os, socket, urllib.error, urllib.request
from pathlib import Path

from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec, NodeCategory,
                 NodeExample, build_spec, node_spec, register_package)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return {{"status": response.status, "body": response.read().decode()}}
    except urllib.error.HTTPError as exc:
        return {{"status": exc.code, "egress": exc.headers.get("X-Plugbox-Egress")}}
    except OSError as exc:
        return {{"error": str(exc)}}


def direct(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return True
    except OSError:
        return False


targets = os.environ["PROBE_TARGETS"].split(",")
report = {{t: fetch("http://" + t + "/") for t in targets}}
report["direct"] = direct(int(targets[0].rsplit(":", 1)[1]))
report["proxy_env"] = os.environ.get("HTTP_PROXY")
Path(os.environ["PLUGBOX_DATA_DIR"], "probe.json").write_text(json.dumps(report))


@node_spec(name="{name}", display_name="{name}", description="Egress probe.",
           category=NodeCategory.integration, icon="Globe",
           examples=[NodeExample(name="x", data={{"name": "x"}})])
class Node(BaseNodeData):
    pass


async def run_completion(nodes, context):
    return {{}}


PACKAGE = register_package(IntegrationPackageSpec(
    name="{name}", nodes=(IntegrationNodeRegistration("{name}", Node, build_spec(Node)),),
    run_completion=run_completion))
'''


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.server.server_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    """Two HTTP servers on the host's loopback: the granted receiver and one not granted."""
    started = [HTTPServer(("127.0.0.1", 0), _Hello) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in started]
    for thread in threads:
        thread.start()
    yield started[0].server_address[1], started[1].server_address[1]
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert REDIS is not None
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        anyio.run(_wait_for_port, port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _wait_for_port(port: int) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)  # redis-server is starting; bounded
                continue
            await stream.aclose()
            return


def write_plugin(root: Path, name: str, network: list[str]) -> None:
    (root / name / name).mkdir(parents=True)
    requested = ", ".join(json.dumps(d) for d in network)
    (root / name / "plugin.toml").write_text(
        f'name = "{name}"\npackage = "{name}"\n\n[permissions]\nnetwork = [{requested}]\n'
    )
    (root / name / name / "__init__.py").write_text(PROBE.format(name=name))


async def probe(tmp_path: Path, grants: Grants, targets: list[str], name: str) -> PluginHost:
    config = HostConfig(
        plugins_root=tmp_path / "plugins",
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"PROBE_TARGETS": ",".join(targets)},
        grants=grants,
    )
    with anyio.fail_after(90):
        async with PluginHost(config) as plugins:
            await plugins.get(name).start()
            return plugins


def report(tmp_path: Path, name: str) -> dict[str, object]:
    path = tmp_path / "data" / "plugins" / name / "data" / "probe.json"
    result: dict[str, object] = json.loads(path.read_text())
    return result


def test_a_plugin_granted_one_receiver_reaches_it_and_nothing_else(
    tmp_path: Path, servers: tuple[int, int], redis_port: int
) -> None:
    receiver, other = servers
    targets = [f"127.0.0.1:{receiver}", f"127.0.0.1:{other}", f"127.0.0.1:{redis_port}", OUTSIDE]
    write_plugin(tmp_path / "plugins", "egress_probe", targets)
    granted = PluginGrant(
        network=(targets[0],), declined=tuple(f"network:{t}" for t in targets[1:])
    )
    grants = Grants(plugins={"egress_probe": granted})
    plugins = anyio.run(probe, tmp_path, grants, targets, "egress_probe")
    seen = report(tmp_path, "egress_probe")
    assert seen[targets[0]] == {"status": 200, "body": f"hello from {receiver}"}
    for refused in targets[1:]:
        assert seen[refused] == {"status": 403, "egress": "denied"}, refused  # by the proxy
    assert seen["direct"] is False  # no route around the proxy
    assert plugins.egress.denied["egress_probe"] == 3
    assert plugins.egress.allowed["egress_probe"] == 1


def test_a_plugin_with_no_network_grant_reaches_nothing(
    tmp_path: Path, servers: tuple[int, int]
) -> None:
    receiver, _ = servers
    targets = [f"127.0.0.1:{receiver}"]
    write_plugin(tmp_path / "plugins", "egress_none", targets)
    declined = PluginGrant(declined=(f"network:{targets[0]}",))
    plugins = anyio.run(
        probe, tmp_path, Grants(plugins={"egress_none": declined}), targets, "egress_none"
    )
    seen = report(tmp_path, "egress_none")
    assert "error" in seen[targets[0]]  # urllib found no route at all
    assert seen["direct"] is False
    assert seen["proxy_env"] is None
    assert plugins.egress.denied["egress_none"] == 0


@pytest.mark.parametrize(
    ("destination", "allowlist", "why"),
    [
        ("api.example.com:80", ["api.example.com:443"], "not granted"),  # wrong port
        ("example.com:443", ["*.example.com:443"], "not granted"),  # wildcard: sub-domains only
        ("localhost:6379", ["localhost:6379"], "non-public"),  # a name for loopback (Redis)
        ("192.0.2.1:80", ["*.example.com:80"], "not granted"),  # refused before any lookup
    ],
)
def test_the_proxy_admits_only_granted_public_destinations(
    destination: str, allowlist: list[str], why: str
) -> None:
    host, _, port = destination.rpartition(":")
    with pytest.raises(Denied, match=why):
        anyio.run(resolve_allowed, host, int(port), allowlist)


def test_a_granted_address_literal_and_a_wildcard_sub_domain_pass() -> None:
    assert anyio.run(resolve_allowed, "127.0.0.1", 8080, ["127.0.0.1:8080"]) == ["127.0.0.1"]
    with pytest.raises(Denied, match="non-public"):  # granted by name; resolves to loopback
        anyio.run(resolve_allowed, "localhost", 443, ["*.localhost:443", "localhost:443"])
