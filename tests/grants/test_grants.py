"""Grants: the plugin asks, the operator grants; an excess is refused by name, a grant is exact."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._grants import (
    Grants,
    NotGranted,
    PluginGrant,
    effective_policy,
    load_grants,
    resolve,
    save_grants,
)
from host._manifest import load_manifest
from host.sandbox import SandboxPolicy, probe_layers

PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "grant_plugins"
REPO = Path(__file__).resolve().parents[2]
LAYERS = {layer.name: layer for layer in probe_layers()}
needs_strict = pytest.mark.skipif(
    not (LAYERS["bwrap"].available and LAYERS["cgroup"].available),
    reason="strict needs bubblewrap and the cgroup layer (tools/system-deps.sh; run as root)",
)
SECRET = "host-secret-value-8d1f"
PARTIAL = Grants(
    plugins={
        "greedy": PluginGrant(
            env=("PLUGBOX_TEST_SHARED",),
            writable_paths=("cache",),
            declined=(
                "policy:off",
                "env:PLUGBOX_TEST_HOST_SECRET",
                "network:*",
                "writable:/etc",
                "writable:.",
            ),
        )
    }
)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's 127.0.0.1 that accepts: the probe must not reach it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


@pytest.fixture
def host_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGBOX_TEST_HOST_SECRET", SECRET)
    monkeypatch.setenv("PLUGBOX_TEST_SHARED", "shared-value")


def config(tmp_path: Path, grants: Grants | None, port: int) -> HostConfig:
    return HostConfig(
        plugins_root=PLUGINS,
        data_dir=tmp_path / "data",
        sandbox_policy=SandboxPolicy.strict,
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"PROBE_PORT": str(port)},
        grants=grants,
    )


def test_without_grants_every_excess_request_is_named() -> None:
    manifest = load_manifest(PLUGINS / "greedy")
    with pytest.raises(NotGranted) as refused:
        resolve(manifest, Grants(), SandboxPolicy.strict)
    assert refused.value.data["excess"] == [
        "policy:off",
        "env:PLUGBOX_TEST_HOST_SECRET",
        "env:PLUGBOX_TEST_SHARED",
        "network:*",
        "writable:/etc",
        "writable:.",
        "writable:cache",
    ]
    message = str(refused.value)
    assert "looser than the operator's 'strict'" in message
    assert "all network is an operator-only grant" in message
    assert "absolute: only sub-paths of the plugin's data directory" in message


@needs_strict
@pytest.mark.anyio
async def test_the_host_refuses_to_start_it_under_strict_without_grants(
    tmp_path: Path, listener: int, host_secret: None
) -> None:
    with anyio.fail_after(60):
        async with PluginHost(config(tmp_path, None, listener)) as plugins:
            with pytest.raises(NotGranted) as refused:
                await plugins.get("greedy").start()
    assert "env:PLUGBOX_TEST_HOST_SECRET" in str(refused.value)
    assert not (tmp_path / "data" / "plugins" / "greedy" / "data" / "probe.json").exists()


@needs_strict
@pytest.mark.anyio
async def test_with_partial_grants_it_runs_with_exactly_the_granted_set(
    tmp_path: Path, listener: int, host_secret: None
) -> None:
    with anyio.fail_after(60):
        async with PluginHost(config(tmp_path, PARTIAL, listener)) as plugins:
            await plugins.get("greedy").start()
            layers = plugins.get("greedy").status()["sandbox_layers"]
    assert set(layers) == {"process", "bwrap", "cgroup"}
    assert_probe(tmp_path / "data" / "plugins" / "greedy" / "data")


def assert_probe(data: Path) -> None:
    """What the plugin found from inside: exactly the granted set."""
    probe = json.loads((data / "probe.json").read_text())
    assert probe["env"] == {"PLUGBOX_TEST_HOST_SECRET": None, "PLUGBOX_TEST_SHARED": "shared-value"}
    assert probe["network"] is False  # a listening port on the host's loopback: unreachable
    assert probe["etc"] is False
    assert not Path("/etc/plugbox-greedy-probe").exists()
    # Outside the data dir, a write lands in bwrap's private /tmp at most, never on the host.
    assert not (data.parent / "greedy-parent-probe").exists()
    assert probe["cache"] is True
    assert (data / "cache" / "probe").read_text() == "probe"
    assert "bwrap" in probe["pid1"]  # policy 'off' was declined: strict, sandboxed


def test_a_manifest_floor_only_tightens_the_operators_policy() -> None:
    manifest = load_manifest(PLUGINS / "greedy")
    stricter = manifest.model_copy(update={"sandbox_policy": "strict"})
    assert effective_policy(stricter, PluginGrant(), SandboxPolicy.standard) is SandboxPolicy.strict
    assert effective_policy(manifest, PluginGrant(), SandboxPolicy.strict) is SandboxPolicy.strict
    operator_off = PluginGrant(policy="off")
    assert effective_policy(manifest, operator_off, SandboxPolicy.strict) is SandboxPolicy.off


def test_limits_above_the_cap_are_excess_unless_raised_or_declined() -> None:
    manifest = load_manifest(PLUGINS / "greedy")
    greedy = manifest.model_copy(
        update={"limits": manifest.limits.model_copy(update={"memory_mb": 4096})}
    )
    base = PARTIAL.for_plugin("greedy")
    with pytest.raises(NotGranted, match=r"limit:memory_mb \(above the operator's cap 1024\)"):
        resolve(greedy, PARTIAL, SandboxPolicy.strict)
    raised = PARTIAL.with_plugin("greedy", base.model_copy(update={"limits": {"memory_mb": 4096}}))
    assert resolve(greedy, raised, SandboxPolicy.strict).limits.memory_mb == 4096
    declined = base.model_copy(update={"declined": (*base.declined, "limit:memory_mb")})
    capped = resolve(greedy, PARTIAL.with_plugin("greedy", declined), SandboxPolicy.strict)
    assert capped.limits.memory_mb == 1024


def test_grants_refuse_what_could_never_be_honoured() -> None:
    with pytest.raises(ValueError, match="absolute"):
        PluginGrant(writable_paths=("/etc",))
    with pytest.raises(ValueError, match=r"'\.\.'"):
        PluginGrant(writable_paths=("../other",))
    with pytest.raises(ValueError, match="not host:port"):
        PluginGrant(network=("example.com",))


def test_the_grants_file_round_trips_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "grants.toml"
    grants = PARTIAL.with_plugin(
        "other", PluginGrant(network=("api.example.com:443", "*.slack.com:443"), policy="off")
    )
    save_grants(grants, path)
    assert load_grants(path) == grants
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_grants(tmp_path / "missing.toml") == Grants()


def test_install_shows_requested_vs_granted_and_records_the_operators_approval(
    tmp_path: Path,
) -> None:
    plugin = tmp_path / "plugins" / "greedy"
    shutil.copytree(PLUGINS / "greedy", plugin)
    manifest = plugin / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"0.0.1"', '"[red]1.0[/red]"'))
    data = tmp_path / "state"
    refused = plugbox("plugins", "install", str(plugin), "--data-dir", str(data), cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr  # the operator answered "n"
    assert "[red]1.0[/red]" in refused.stdout  # plugin strings are escaped, never styled
    assert refused.stdout.count("NOT GRANTED") == 7
    assert "not approved" in refused.stdout
    assert not (data / "grants.toml").exists()
    approved = plugbox(
        "plugins", "install", str(plugin), "--data-dir", str(data), "--yes", cwd=tmp_path
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    recorded = load_grants(data / "grants.toml").for_plugin("greedy")
    assert recorded.env == ("PLUGBOX_TEST_HOST_SECRET", "PLUGBOX_TEST_SHARED")
    assert recorded.network is True
    assert recorded.writable_paths == ("cache",)
    assert recorded.declined == ("policy:off", "writable:/etc", "writable:.")
    assert "greedy: " in approved.stdout  # the venv was built (or reused)
    changed = plugbox(
        "plugins", "grant", "greedy", "--revoke", "network:*", "--decline", "network:*",
        "--network", "api.example.com:443", "--plugins", str(plugin.parent),
        "--data-dir", str(data), cwd=tmp_path,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stdout + changed.stderr
    after = load_grants(data / "grants.toml").for_plugin("greedy")
    assert after.network == ("api.example.com:443",)
    assert "network:*" in after.declined
    assert "declined" in changed.stdout
    bad = plugbox("plugins", "grant", "greedy", "--writable", "/etc", "--data-dir", str(data),
                  cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2
    assert "absolute" in bad.stdout


def plugbox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "host.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        input="n\n",
    )


def test_an_interpreter_is_used_only_when_the_operator_allowed_it() -> None:
    manifest = load_manifest(PLUGINS / "greedy").model_copy(update={"python": "/opt/evil/python"})
    with pytest.raises(NotGranted, match="python:/opt/evil/python"):
        resolve(manifest, PARTIAL, SandboxPolicy.strict)
    allowed = PARTIAL.model_copy(
        update={"host": PARTIAL.host.model_copy(update={"interpreters": ("/opt/evil/python",)})}
    )
    assert resolve(manifest, allowed, SandboxPolicy.strict).python == "/opt/evil/python"


@needs_strict
@pytest.mark.anyio
async def test_a_granted_sub_path_created_later_is_writable_by_the_plugin(
    tmp_path: Path, listener: int, host_secret: None
) -> None:
    data = tmp_path / "data" / "plugins" / "greedy" / "data"
    for _ in range(2):  # the second start finds its data dir already the plugin's own
        with anyio.fail_after(60):
            async with PluginHost(config(tmp_path, PARTIAL, listener)) as plugins:
                await plugins.get("greedy").start()
        assert_probe(data)
        shutil.rmtree(data / "cache")  # granted again: created anew by the host
