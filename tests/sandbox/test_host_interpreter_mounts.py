"""Sandbox: a plugin on the host's interpreter (`use_venvs = False`) is given the SDK package and
the host's venv, each mounted on its own, never the folder that holds them.

The folder holding the SDK is usually a checkout: it holds the operator's files, and its root may be
0700 (`mktemp -d` makes it so), which a plugin running as its own uid cannot traverse: mounting it
whole made every such plugin fail with `setpriv: ... Permission denied`. One test pins the mounts,
one asks a real sandboxed plugin what it sees; every real-process test of the suite run from a
`mktemp -d` clone proves the 0700 case.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from host import HostConfig, PluginHost
from host._host import dev_mounts_from_env
from host._process import launch_spec
from host._venv import host_venv, sdk_source_dir
from host.sandbox import probe_layers
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

if TYPE_CHECKING:
    from tests.conftest import ConfigFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
REPO = Path(__file__).resolve().parents[2]


async def test_only_the_sdk_and_the_host_venv_are_mounted_not_the_checkout(
    make_config: ConfigFactory,
) -> None:
    config = make_config(PLUGINS)
    async with PluginHost(config) as plugins:
        manifest = plugins.manifests["healthy"]
        spec = launch_spec(manifest, await plugins._launch_config(manifest))
    mounted = set(spec.read_only_paths)  # resolved by the host
    # The suite adds its own folder (`PLUGBOX_DEV_MOUNTS`, tests/conftest.py): fixture helpers.
    assert config.dev_mounts == (REPO / "tests",)
    assert mounted == {sdk_source_dir(), *config.dev_mounts}
    assert REPO not in mounted
    assert spec.venv_dir == host_venv()
    if sys.prefix != sys.base_prefix:  # the suite runs in the checkout's .venv
        assert spec.venv_dir is not None
        assert spec.venv_dir.name == Path(sys.prefix).name
    # The SDK is still found: its parent is searched (PYTHONPATH), not mounted.
    assert str(sdk_source_dir().parent) in spec.env["PYTHONPATH"].split(":")


def test_dev_mounts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGBOX_DEV_MOUNTS", f"/a{os.pathsep}{os.pathsep}/b")
    assert dev_mounts_from_env() == (Path("/a"), Path("/b"))
    monkeypatch.delenv("PLUGBOX_DEV_MOUNTS")
    assert HostConfig().dev_mounts == ()


PROBER = """
import os
from typing import Any
from sdk import BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec, NodeCategory
from sdk import build_spec, node_spec, register_package

@node_spec(name="prober", display_name="Prober", description="Looks.",
           category=NodeCategory.integration, icon="Eye")
class ProberNode(BaseNodeData):
    pass

async def run_completion(nodes: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    paths = os.environ["PROBE_PATHS"].split(os.pathsep)
    return {str(n["id"]): {path: os.path.exists(path) for path in paths} for n in nodes}

PACKAGE = register_package(IntegrationPackageSpec(
    name="prober", run_completion=run_completion,
    nodes=(IntegrationNodeRegistration("prober", ProberNode, build_spec(ProberNode)),)))
"""


@pytest.mark.skipif(
    not {layer.name: layer for layer in probe_layers()}["bwrap"].available,
    reason="the mounts are bubblewrap's",
)
async def test_a_plugin_sees_the_sdk_but_not_the_checkout_around_it(
    tmp_path: Path, make_config: ConfigFactory
) -> None:
    plugin = tmp_path / "plugins" / "prober"
    (plugin / "prober").mkdir(parents=True)
    (plugin / "plugin.toml").write_text('name = "prober"\nversion = "0.0.1"\npackage = "prober"\n')
    (plugin / "prober" / "__init__.py").write_text(PROBER)
    looked_at = {
        str(sdk_source_dir() / "__init__.py"): True,  # what it imports
        str(REPO / "tests" / "conftest.py"): True,  # named in PLUGBOX_DEV_MOUNTS by the suite
        str(REPO / "pyproject.toml"): False,  # the rest of the checkout
        str(REPO / "host" / "__init__.py"): False,
        str(REPO / "Makefile"): False,
    }
    config = make_config(
        tmp_path / "plugins", extra_env={"PROBE_PATHS": os.pathsep.join(looked_at)}
    )
    node = {"id": "p", "type": "prober", "data": {"name": "p"}}
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            answer = await plugins.get("prober").call(
                Calls.COMPLETION_RUN,
                CompletionRunParams([node], CompletionContextWire(1, {}, {}, 1)),
            )
    assert answer.result == {"p": looked_at}
