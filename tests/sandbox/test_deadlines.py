"""Deadlines: a call's start never waits for a slow plugin beyond the host's session-open bound,
whatever the plugin's own `call_timeout_s` (40 s here, granted by the operator)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost
from host._grants import Grants, PluginGrant
from host.runtime import IntegrationRuntimeContext, open_call
from plugbox_demo.scripted_call import run_scripted_call
from sdk.protocol import PluginTimeout

pytestmark = pytest.mark.anyio
BOUND_S = 2.0
PACKAGE = '''"""A runtime plugin; `hang` never finishes opening its session."""
import anyio
from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec, NodeCategory,
                 NodeExample, build_spec, node_spec, register_package, IntegrationRuntimeSession)

NAME = "{name}"


@node_spec(name=NAME, display_name=NAME, description="Live.", category=NodeCategory.integration,
           icon="Box", examples=[NodeExample(name="x", data={{"name": "x"}})])
class Node(BaseNodeData):
    pass


class Session(IntegrationRuntimeSession):
    name = NAME

    async def on_call_finished(self, *, gathered_context):
        return {{NAME: {{"finished": True}}}}


async def create_runtime_sessions(context):
    if NAME == "hang":
        await anyio.sleep_forever()
    return [Session()]


PACKAGE = register_package(IntegrationPackageSpec(
    name=NAME, nodes=(IntegrationNodeRegistration(NAME, Node, build_spec(Node)),),
    create_runtime_sessions=create_runtime_sessions))
'''


def write_plugin(root: Path, name: str, limits: str = "") -> None:
    (root / name / name).mkdir(parents=True)
    manifest = f'name = "{name}"\nversion = "0.0.1"\npackage = "{name}"\n'
    (root / name / "plugin.toml").write_text(manifest + (f"\n[limits]\n{limits}\n" * bool(limits)))
    (root / name / name / "__init__.py").write_text(PACKAGE.format(name=name))


async def test_a_hanging_runtime_open_delays_the_call_start_by_at_most_the_host_bound(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "hang", "call_timeout_s = 40")
    write_plugin(tmp_path / "plugins", "quick")
    config = HostConfig(
        plugins_root=tmp_path / "plugins",
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        session_open_timeout_s=BOUND_S,
        grants=Grants(plugins={"hang": PluginGrant(limits={"call_timeout_s": 40})}),
    )
    graph = {"nodes": {n: {"id": n, "type": n, "data": {"name": n}} for n in ("hang", "quick")}}
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins:
            await plugins.registry.refresh()
            assert plugins.registry.errors == []
            for name in ("hang", "quick"):
                await plugins.get(name).start()  # warm: the bound is about the open, not a boot
            assert plugins.get("hang").manifest.limits.call_timeout_s == 40
            context = IntegrationRuntimeContext(1, workflow_graph=graph, user_config={})
            started = time.monotonic()
            async with open_call(context, plugins=plugins) as sessions:
                waited = time.monotonic() - started

                def attach(worker: Any) -> None:
                    for session in sessions:
                        session.attach(worker)

                await run_scripted_call(attach=attach)
                by_name = {session.name: session for session in sessions}
                finished = await by_name["quick"].on_call_finished(gathered_context={})
    assert BOUND_S <= waited < BOUND_S + 1.0
    assert finished == {"quick": {"finished": True}}
    assert isinstance(by_name["hang"].open_error, PluginTimeout)
    assert "session-open bound" in str(by_name["hang"].open_error)
    assert by_name["quick"].open_error is None
