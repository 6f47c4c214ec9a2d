"""Shadow task: a package's own pipecat observers, out of process, against the same in process."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import host.runtime._sessions as sessions_module
from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "shadow_plugins"


def graph(*types: str) -> dict[str, Any]:
    return {"nodes": {t: {"id": t, "type": t, "data": {"name": t}} for t in types}}


@pytest.fixture
async def env(make_host: HostFactory) -> AsyncIterator[tuple[PluginHost, SQLiteRunStore]]:
    # use_venvs=False (make_host's default): the plugin process runs the host's interpreter, so
    # pipecat is importable in it without building a venv holding pipecat per test run (see
    # docs/shadow-task.md).
    # Only the probe starts warm (it imports pipecat: seconds under load); a cold start (sleepy)
    # happens inside the session-open bound, raised for it.
    async with make_host(PLUGINS, warm=("shadow_probe",), session_open_timeout_s=60) as env:
        yield env


def in_process_probe() -> Any:
    """The probe package imported here, as the in-process framework would."""
    sys.path.insert(0, str(PLUGINS / "shadow_probe"))
    try:
        module = importlib.import_module("shadow_probe")
    finally:
        sys.path.remove(str(PLUGINS / "shadow_probe"))
    return module.ProbeSession()


async def test_observers_out_of_process_see_what_they_see_in_process_on_the_same_call(
    env: tuple[PluginHost, SQLiteRunStore],
) -> None:
    plugins, store = env
    run_id = await store.create_run(workflow_definition={"nodes": []})
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=graph("shadow_probe")), plugins=plugins
    ) as sessions:
        local = in_process_probe()

        def attach(worker: Any) -> None:
            local.attach(worker)  # in process: the real worker, its real turn tracking observer
            for session in sessions:
                session.attach(worker)  # out of process: the plugin's shadow task

        gathered = await run_scripted_call(attach=attach, turn_tracking=True)
        logs = await finish_call(sessions, gathered_context=gathered, store=store, run_id=run_id)
    expected = await local.on_call_finished(gathered_context=gathered)
    remote = logs["shadow_probe"]
    assert remote == expected["shadow_probe"]
    # and the snapshot is the whole call, not an empty one that happens to match
    assert remote["tokens"]["total"] > 0
    assert ["user", "what's the weather in paris"] in remote["transcript"]
    assert any(speaker == "bot" for speaker, _ in remote["transcript"])
    assert [t[0] for t in remote["turns"]].count("ended") >= 4
    assert remote["task_events"] == ["started:StartFrame", "finished:EndFrame"]
    assert remote["ended"]
    assert remote["upstream"] > 0
    run = await store.get_run(run_id)
    assert run is not None
    assert run.logs[LIVE_KEY]["shadow_probe"]["dropped"] == 0


async def test_a_plugin_sleeping_in_on_push_frame_never_slows_the_call(
    env: tuple[PluginHost, SQLiteRunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins, store = env
    monkeypatch.setattr(sessions_module, "DRAIN_TIMEOUT_S", 0.5)
    monkeypatch.setattr(sessions_module, "FINISH_TIMEOUT_S", 0.5)
    run_id = await store.create_run(workflow_definition={"nodes": []})
    async with open_call(
        IntegrationRuntimeContext(run_id, workflow_graph=graph("shadow_probe", "sleepy")),
        plugins=plugins,
    ) as sessions:
        sleepy = next(s for s in sessions if s.name == "sleepy")
        assert sleepy.queue is not None
        assert sleepy.queue.frames is not None
        started = time.monotonic()
        await run_scripted_call(attach=lambda worker: [s.attach(worker) for s in sessions])  # type: ignore[func-returns-value]
        call_s = time.monotonic() - started
        sent = sleepy.queue.delivered + len(sleepy.queue.events)
        logs = await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    # The sleeper needs 0.2 s per frame: observing the call would take `sent * 0.2` seconds.
    assert sent > 50
    assert call_s < sent * 0.2 / 4
    run = await store.get_run(run_id)
    assert run is not None
    live = run.logs[LIVE_KEY]
    assert live["sleepy"]["status"] == "error"  # it could not answer in time: its loss only
    assert live["shadow_probe"]["dropped"] == 0
    assert logs["shadow_probe"]["tokens"]["total"] > 0


async def test_without_pipecat_in_its_venv_a_plugin_observes_stand_ins_with_the_same_figures(
    tmp_path: Path,
) -> None:
    # A real venv built by the host (the SDK and its few dependencies, no pipecat).
    config = HostConfig(
        plugins_root=PLUGINS.parent / "standin_plugins",
        data_dir=tmp_path / "data",
        idle_timeout_s=None,
        session_open_timeout_s=60,
    )
    with anyio.fail_after(240):
        async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "runs.db") as store:
            await plugins.registry.refresh()
            run_id = await store.create_run(workflow_definition={"nodes": []})
            async with open_call(
                IntegrationRuntimeContext(run_id, workflow_graph=graph("standin_probe")),
                plugins=plugins,
            ) as sessions:
                local = in_process_probe()

                def attach(worker: Any) -> None:
                    local.attach(worker)
                    for session in sessions:
                        session.attach(worker)

                await run_scripted_call(attach=attach, turn_tracking=True)
                logs = await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
    expected = (await local.on_call_finished(gathered_context={}))["shadow_probe"]
    seen = logs["standin_probe"]
    assert seen["pipecat_importable"] is False
    assert seen["tokens"] == expected["tokens"]
    assert seen["tokens"]["total"] > 0
    assert seen["transcript"] == expected["transcript"]
    assert seen["classes"] == expected["classes"]
    assert seen["upstream"] == expected["upstream"]
    assert seen["turns"] == expected["turns"]  # pipecat's turn rules, ported for stand-ins
