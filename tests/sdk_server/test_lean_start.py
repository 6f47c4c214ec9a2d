"""A plugin's start imports only what serving needs; what it skipped still works when used.

`sdk.serve` stands in for pydantic's plugin loader when `PYDANTIC_DISABLE_PLUGINS` disables every
plugin (the host sets it), so `importlib.metadata` is not imported for nothing; the shadow task's
module, `anyio.from_thread` and `difflib` are imported on first use (docs/benchmarks.md, start
cost). Real sandboxed plugin processes, with and without the zygote; the stand-in's own rules in
fresh interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest

from sdk._contexts import SyncMessages
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

if TYPE_CHECKING:
    from tests.conftest import HostFactory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "start_plugins"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "plain"])
async def test_a_start_skips_what_serving_does_not_need_and_the_plugin_can_still_use_it(
    make_host: HostFactory, zygote: bool
) -> None:
    async with make_host(FIXTURES, zygote=zygote) as (plugins, _):
        params = CompletionRunParams(
            [{"id": "n1", "type": "lean_probe", "data": {"name": "x"}}],
            CompletionContextWire(1, {}, {}, 1),
        )
        result = await plugins.get("lean_probe").call(Calls.COMPLETION_RUN, params)
    found: dict[str, Any] = result.result["n1"]
    assert found["at_import"] == {
        "importlib.metadata": False,
        "email": False,
        "zipfile": False,
        "sdk._shadow": False,
        "anyio.from_thread": False,
        "difflib": False,
    }
    assert found["loader"].startswith("plugbox's stand-in")
    import pydantic

    assert found["used"] == {"pydantic_version": pydantic.VERSION, "late_model": 3}


def run_fresh(code: str, **env: str) -> str:
    """`code` in a fresh interpreter (nothing of pydantic imported yet); its stdout."""
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


PROBE = """
import sys
from sdk import serve
serve.skip_pydantic_plugin_scan()
calls = []
loader = sys.modules.get(serve.PYDANTIC_LOADER)
if loader is not None:
    original = loader.get_plugins
    loader.get_plugins = lambda: calls.append(1) or original()
import pydantic
class Model(pydantic.BaseModel):
    x: int
assert Model(x="1").x == 1
print(loader is not None, len(calls) > 0, "importlib.metadata" in sys.modules)
"""


def test_the_stand_in_answers_pydantic_when_every_plugin_is_disabled() -> None:
    # pydantic still asks this module for its plugins on each model (if it stopped asking, the
    # stand-in would skip nothing: this test says so), and nothing imported importlib.metadata.
    for value in ("__all__", "1", "true"):
        assert run_fresh(PROBE, PYDANTIC_DISABLE_PLUGINS=value) == "True True False"


def test_pydantic_keeps_its_own_loader_unless_every_plugin_is_disabled() -> None:
    assert run_fresh(PROBE) == "False False True"
    assert run_fresh(PROBE, PYDANTIC_DISABLE_PLUGINS="some_plugin") == "False False True"


def test_enabling_plugins_after_the_start_hands_over_to_pydantic_s_loader() -> None:
    code = """
import os, sys
from sdk import serve
serve.skip_pydantic_plugin_scan()
import pydantic
class First(pydantic.BaseModel):
    x: int
os.environ.pop("PYDANTIC_DISABLE_PLUGINS")
class Second(pydantic.BaseModel):
    y: int
real = "stand-in" not in (sys.modules[serve.PYDANTIC_LOADER].__doc__ or "")
print(real, "importlib.metadata" in sys.modules)
"""
    assert run_fresh(code, PYDANTIC_DISABLE_PLUGINS="__all__") == "True True"


async def fetch_live() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "live"}]


@pytest.mark.anyio
async def test_the_sync_message_provider_fetches_live_from_a_worker_thread() -> None:
    messages = SyncMessages(fetch_live)
    assert messages() == []  # on the loop: the messages last fetched (none yet)
    assert await anyio.to_thread.run_sync(messages) == [{"role": "user", "content": "live"}]
    await messages.refresh()
    assert messages() == [{"role": "user", "content": "live"}]
