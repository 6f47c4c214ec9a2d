"""Limits: the operator caps every manifest limit and deadline, the host's hard limits bound them,
and no start fails half-way (a typed error naming the plugin and the key, nothing left behind)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._grants import Grants, PluginGrant
from host._venv import base_interpreter
from host.sandbox import LaunchSpec, SandboxLimits, SandboxPolicy, launch, probe_layers
from host.sandbox._limits import make_preexec
from sdk.protocol import SandboxError

pytestmark = pytest.mark.anyio
LAYERS = {layer.name: layer for layer in probe_layers()}
needs_cgroup = pytest.mark.skipif(
    not LAYERS["cgroup"].available, reason=f"cgroup layer unavailable: {LAYERS['cgroup'].detail}"
)
PACKAGE = '''"""A plain plugin for the limits tests."""
from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec, NodeCategory,
                 NodeExample, build_spec, node_spec, register_package)


@node_spec(name="{name}", display_name="{name}", description="Plain.",
           category=NodeCategory.integration, icon="Box",
           examples=[NodeExample(name="x", data={{"name": "x"}})])
class Node(BaseNodeData):
    pass


PACKAGE = register_package(IntegrationPackageSpec(
    name="{name}", nodes=(IntegrationNodeRegistration("{name}", Node, build_spec(Node)),)))
'''


def write_plugin(root: Path, name: str, limits: str = "") -> None:
    (root / name / name).mkdir(parents=True)
    manifest = f'name = "{name}"\nversion = "0.0.1"\npackage = "{name}"\n'
    (root / name / "plugin.toml").write_text(manifest + (f"\n[limits]\n{limits}\n" * bool(limits)))
    (root / name / name / "__init__.py").write_text(PACKAGE.format(name=name))


async def load_errors(tmp_path: Path, grants: Grants | None = None) -> dict[str, str]:
    config = HostConfig(
        plugins_root=tmp_path / "plugins",
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        grants=grants or Grants(),
    )
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins:
            await plugins.registry.refresh()
            assert plugins.registry.get_package("fine") is not None  # the others serve
            return {e.name: e.message for e in plugins.registry.errors}


async def test_a_limit_above_the_hosts_hard_limit_is_a_load_error_for_that_plugin_only(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "fine")
    write_plugin(tmp_path / "plugins", "greedy", "open_files = 100000000")
    # Even with the operator's cap raised, the host cannot set it: a clear error, not a crash.
    grants = Grants(plugins={"greedy": PluginGrant(limits={"open_files": 100_000_000})})
    errors = await load_errors(tmp_path, grants)
    assert set(errors) == {"greedy"}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert (
        f"limits.open_files = 100000000 is above this host's hard limit ({hard})"
        in (errors["greedy"])
    )


async def test_limits_and_deadlines_above_the_operators_caps_are_refused_with_key_and_cap(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "fine")
    write_plugin(tmp_path / "plugins", "greedy", "open_files = 100000000\ncall_timeout_s = 40")
    errors = await load_errors(tmp_path)
    assert set(errors) == {"greedy"}
    assert "limit:open_files (above the operator's cap 1024)" in errors["greedy"]
    assert "limit:call_timeout_s (above the operator's cap 30.0)" in errors["greedy"]


@needs_cgroup
async def test_plugins_start_while_the_host_holds_1000_file_descriptors(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins", "fine")
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(1000)]
    while held[-1] < 1100:  # every lower number taken: what the host passes is above 1024
        held.append(os.open("/dev/null", os.O_RDONLY))  # (select's FD_SETSIZE: the zygote polls)
    try:
        assert min(held) < 256 < max(held)  # above the plugin's open_files default
        config = HostConfig(
            plugins_root=tmp_path / "plugins",
            data_dir=tmp_path / "data",
            use_venvs=False,
            idle_timeout_s=None,
        )
        with anyio.fail_after(120):
            async with PluginHost(config) as plugins:
                await plugins.registry.refresh()
                assert plugins.registry.errors == []
                assert "cgroup" in plugins.get("fine").layers
    finally:
        for fd in held:
            os.close(fd)


async def test_a_spawn_failure_is_a_sandbox_error_naming_plugin_and_stage(tmp_path: Path) -> None:
    spec = LaunchSpec("ghost", ["/nonexistent/python"], tmp_path / "d", tmp_path)
    with pytest.raises(SandboxError) as caught:
        await launch(spec, SandboxPolicy.off)
    assert caught.value.plugin == "ghost"
    assert caught.value.data["key"] == "exec"
    over = LaunchSpec("greedy", [str(base_interpreter()), "-c", "pass"], tmp_path / "d", tmp_path)
    over = LaunchSpec(**{**over.__dict__, "limits": SandboxLimits(open_files=100_000_000)})
    with pytest.raises(SandboxError) as caught:
        await launch(over, SandboxPolicy.standard)
    assert caught.value.data["key"] == "limits.open_files"


def test_a_failing_step_in_the_child_names_itself_to_the_parent() -> None:
    def broken_join() -> None:
        raise OSError("cgroup.procs: Too many open files")

    read_end, write_end = os.pipe()
    try:
        with pytest.raises(subprocess.SubprocessError):
            subprocess.run(
                [sys.executable, "-c", "pass"],
                preexec_fn=make_preexec(SandboxLimits(), [("cgroup", broken_join)], write_end),
                check=False,
            )
        os.close(write_end)
        assert os.read(read_end, 100) == b"cgroup"
    finally:
        os.close(read_end)
