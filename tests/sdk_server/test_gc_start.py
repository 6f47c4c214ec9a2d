"""The SDK's imports run with the cyclic collector off; the plugin's own code never does.

`python -m sdk.serve` turns the collector off before importing the SDK (pydantic, asyncio,
msgspec, the SDK's models: a sixth of a start's CPU went to the collections those allocations set
off), then moves what they made to the permanent generation and turns it back on before the
author's package is imported. Real sandboxed plugin processes, with and without the zygote.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sdk import serve
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gc_plugins"


async def probe(make_host: HostFactory, **config: Any) -> dict[str, Any]:
    async with make_host(FIXTURES, **config) as (plugins, _):
        params = CompletionRunParams(
            [{"id": "n1", "type": "gc_probe", "data": {"name": "x"}}],
            CompletionContextWire(1, {}, {}, 1),
        )
        handle = plugins.get("gc_probe")
        result = await handle.call(Calls.COMPLETION_RUN, params)
        assert handle.zygote is not None if config.get("zygote", True) else handle.zygote is None
        answer: dict[str, Any] = result.result["n1"]
        return answer


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "plain"])
async def test_the_plugin_imports_and_serves_with_the_collector_on(
    make_host: HostFactory, zygote: bool
) -> None:
    found = await probe(make_host, zygote=zygote)
    at_import, now = found["at_import"], found["now"]
    # The author's import and handlers see the collector as in any Python process...
    assert at_import["enabled"] is True
    assert now["enabled"] is True
    assert now["automatic"] >= 1  # ...which collects their cyclic garbage on its own
    # ...while what the SDK's imports made was frozen, not walked: no full collection ran
    # during them, and no young one beyond those of the interpreter's own start-up (site and
    # .pth files: 6-18 here, before `sdk.serve` runs; the SDK's imports used to add 300+).
    assert at_import["frozen"] > 10_000  # ~60,000 here; none before the change
    assert at_import["collections"][2] == 0
    assert at_import["collections"][0] <= 40


def test_a_refused_start_leaves_the_collector_as_it_found_it() -> None:
    """`sdk.serve.main` called in a process (no cookie): refused, the collector untouched."""
    assert gc.isenabled()
    assert serve.main(["some_package"]) == 2
    assert gc.isenabled()
    gc.disable()
    try:
        assert serve.main(["some_package"]) == 2
        assert not gc.isenabled()
    finally:
        gc.enable()
