"""Per-plugin virtualenvs: built from the package index with uv, isolated from the host, reused."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._manifest import load_manifest
from host._venv import MARKER, VenvBuilder

# xdist: one worker builds the module's venv once, and its tests see it in file order.
pytestmark = pytest.mark.xdist_group("venvs")
MANIFEST = """name = "{name}"
version = "0.0.1"
package = "{name}"
requirements = [{requirements}]
"""
PACKAGE = '''"""A plugin whose only job is to need a requirement."""

import six  # noqa: F401 - from the package index, into this plugin's venv only

from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec, NodeCategory,
                 NodeExample, build_spec, node_spec, register_package)


@node_spec(name="{name}", display_name="{name}", description="Needs six.",
           category=NodeCategory.integration, icon="Box",
           examples=[NodeExample(name="x", data={{"name": "x"}})])
class Node(BaseNodeData):
    pass


PACKAGE = register_package(IntegrationPackageSpec(
    name="{name}", nodes=(IntegrationNodeRegistration("{name}", Node, build_spec(Node)),)))
'''


def write_plugin(root: Path, name: str, requirements: list[str]) -> Path:
    directory = root / name
    (directory / name).mkdir(parents=True, exist_ok=True)
    quoted = ", ".join(f'"{r}"' for r in requirements)
    (directory / "plugin.toml").write_text(MANIFEST.format(name=name, requirements=quoted))
    (directory / name / "__init__.py").write_text(PACKAGE.format(name=name))
    return directory


def imports(python: Path, module: str) -> bool:
    """Whether the venv's python can import `module`, run as the host runs plugins (cwd outside
    the working tree, no inherited PYTHONPATH)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        timeout=60,
        cwd=python.parent,
        env=env,
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[VenvBuilder, Path, Path]:
    root = tmp_path_factory.mktemp("venvs")
    plugin = write_plugin(root / "plugins", "needs_six", ["six==1.16.0"])
    builder = VenvBuilder(root / "venvs")
    info = builder.ensure_sync(load_manifest(plugin))
    assert info.built
    return builder, plugin, info.python


def test_a_plugin_gets_its_requirement_from_the_package_index(
    built: tuple[VenvBuilder, Path, Path],
) -> None:
    _, _, python = built
    assert imports(python, "six")
    assert imports(python, "sdk")
    assert imports(python, "pydantic")


def test_the_host_dependencies_and_the_host_are_not_importable_in_the_plugin(
    built: tuple[VenvBuilder, Path, Path],
) -> None:
    _, _, python = built
    for module in ("fastapi", "pipecat", "host", "uvicorn", "httpx"):
        assert not imports(python, module), module
    for module in ("fastapi", "pipecat", "host"):
        assert __import__(module)  # ...while the host has them


def test_the_build_precompiles_bytecode_because_plugins_see_their_venv_read_only(
    built: tuple[VenvBuilder, Path, Path],
) -> None:
    _, _, python = built
    venv = python.parent.parent
    built_at = (venv / MARKER).stat().st_mtime
    site = next(venv.glob("lib/python*/site-packages"))
    tag = sys.implementation.cache_tag
    for source in (site / "sdk" / "_spec.py", site / "pydantic" / "main.py", site / "six.py"):
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert cached.exists(), cached
        assert cached.stat().st_mtime <= built_at  # written by the build, not by a later import


def test_a_second_start_reuses_the_venv_without_running_the_installer(
    built: tuple[VenvBuilder, Path, Path],
) -> None:
    builder, plugin, python = built
    before = builder.installs
    again = builder.ensure_sync(load_manifest(plugin))
    assert not again.built
    assert again.python == python
    assert builder.installs == before


def test_changing_the_requirements_builds_a_new_venv(
    built: tuple[VenvBuilder, Path, Path], tmp_path: Path
) -> None:
    builder, plugin, python = built
    changed = tmp_path / "changed"
    shutil.copytree(plugin, changed / "needs_six")
    manifest = changed / "needs_six" / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"six==1.16.0"', '"six==1.16.0", "idna"'))
    before = builder.installs
    info = builder.ensure_sync(load_manifest(changed / "needs_six"))
    assert info.built
    assert info.python != python
    assert builder.installs == before + 1
    assert imports(info.python, "idna")


@pytest.mark.anyio
async def test_the_host_runs_the_plugin_in_its_venv_and_a_warm_listing_starts_nothing(
    built: tuple[VenvBuilder, Path, Path],
) -> None:
    builder, plugin, _ = built
    data = builder.root.parent / "data"
    config = HostConfig(plugins_root=plugin.parent, data_dir=data, idle_timeout_s=None)
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins:
            await plugins.registry.refresh()
            assert [s["name"] for s in plugins.registry.all_node_specs()] == ["needs_six"]
            assert plugins.registry.spec_fetches == 1
        async with PluginHost(config) as plugins:
            await plugins.registry.refresh()
            assert plugins.registry.spec_fetches == 0
            assert not any(handle.starts for handle in plugins.handles.values())
            assert plugins.registry.get_node_spec("needs_six") is not None


INTERRUPTED_BUILD = """
import os, signal, sys
from pathlib import Path
from host._manifest import load_manifest
from host._venv import VenvBuilder

def progress(message):
    if "installing" in message:  # mid-build: the staging dir exists, the venv is not ready
        os.kill(os.getpid(), signal.SIGKILL)

VenvBuilder(Path(sys.argv[1]), progress=progress).ensure_sync(load_manifest(Path(sys.argv[2])))
"""


def test_a_build_killed_midway_leaves_nothing_after_the_next_build(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "plugins", "needs_six", ["six==1.16.0"])
    root = tmp_path / "venvs"
    killed = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_BUILD, str(root), str(plugin)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    [left] = root.glob("*.building-*")  # what the old code leaked, once per interrupted build
    dead_other = root / "0123456789abcdef01234567.building-4194304"  # another key, no builder
    dead_other.mkdir()
    live = root / "76543210fedcba9876543210.building-1"  # another key with a live build
    live.mkdir()
    with open(root / "76543210fedcba9876543210.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # that build holds its key's lock
        info = VenvBuilder(root).ensure_sync(load_manifest(plugin))
    assert info.built
    assert (info.path / MARKER).exists()
    assert not left.exists()
    assert not dead_other.exists()
    assert live.exists()  # never pulled from under a build in progress
