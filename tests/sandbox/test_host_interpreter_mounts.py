"""Sandbox: a plugin on the host's interpreter (`use_venvs = False`) is given the SDK package and
the host's venv, each mounted on its own, never the folder that holds them.

The folder holding the SDK is usually a checkout: it holds the operator's files, and its root may be
0700 (`mktemp -d` makes it so), which a plugin running as its own uid cannot traverse: mounting it
whole made every such plugin fail with `setpriv: ... Permission denied`. Every real-process test of
the suite run from a `mktemp -d` clone is the end-to-end proof; this one pins the mounts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from host import HostConfig, PluginHost
from host._host import dev_mounts_from_env
from host._process import launch_spec
from host._venv import host_venv, sdk_source_dir

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
