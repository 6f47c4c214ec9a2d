"""Call end under faults: every plugin's snapshot is written in one transaction, a full disk is
waited out (a real 1 MiB tmpfs, filled), and one plugin's failure never costs another's snapshot."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore
from host.runtime import LIVE_KEY, IntegrationRuntimeContext, finish_call, open_call
from plugbox_demo.scripted_call import run_scripted_call

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_plugins"


def _graph(*types: str) -> dict[str, Any]:
    return {"nodes": {t: {"id": t, "type": t, "data": {"name": t}} for t in types}}


def _fill(path: Path) -> Path:
    """Write `path` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def _log_keys(db_path: Path, run_id: int) -> set[str]:
    """What another reader sees committed (a second connection, as the dashboard would)."""
    with sqlite3.connect(db_path, timeout=30) as db:
        rows = db.execute(
            "SELECT key FROM entries WHERE run_id = ? AND section = 'logs'", (run_id,)
        )
        return {str(key) for (key,) in rows}


async def test_a_full_disk_at_call_end_is_waited_out_and_a_crashed_plugin_costs_only_itself(
    tmp_path: Path,
) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = await anyio.run_process(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    config = HostConfig(
        plugins_root=PLUGINS, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    db_path = full / "runs.db"
    try:
        with anyio.fail_after(120):
            async with (
                PluginHost(config) as plugins,
                SQLiteRunStore(db_path, fault_budget_s=100) as store,
            ):
                await plugins.registry.refresh()
                run_id = await store.create_run(workflow_definition={"nodes": []})
                async with open_call(
                    IntegrationRuntimeContext(
                        run_id, workflow_graph=_graph("recorder_all", "recorder_speech")
                    ),
                    plugins=plugins,
                ) as sessions:
                    victim = await plugins.get("recorder_speech").start()

                    def attach(worker: Any) -> None:
                        for session in sessions:
                            session.attach(worker)
                        victim.process.kill_group(signal.SIGKILL)  # one plugin fails mid-call

                    await run_scripted_call(attach=attach)
                    filler = _fill(full / "filler")
                    logs: dict[str, Any] = {}

                    async def finish() -> None:
                        logs.update(
                            await finish_call(
                                sessions, gathered_context={}, store=store, run_id=run_id
                            )
                        )

                    async with anyio.create_task_group() as group:
                        group.start_soon(finish)
                        while store.faults == 0:  # noqa: ASYNC110 - bounded by fail_after
                            await anyio.sleep(0.05)
                        assert _log_keys(db_path, run_id) == set()  # nothing torn in meanwhile
                        filler.unlink()  # space returns; the same transaction goes through
                run = await store.get_run(run_id)
    finally:
        await anyio.run_process(["umount", "-l", str(full)], check=False)
    assert run is not None
    assert run.logs["recorder_all"]["events"]  # the healthy plugin's snapshot
    assert logs["recorder_all"] == run.logs["recorder_all"]
    entry = run.logs["integration_recorder_speech"]  # the failed one's error entry, no snapshot
    assert entry["error"] in {"PluginCrashed", "ConnectionClosed"}
    assert "recorder_speech" not in run.logs
    live = run.logs[LIVE_KEY]
    assert live["recorder_all"]["status"] == "ok"
    assert live["recorder_speech"]["status"] == "error"


async def test_a_snapshot_the_store_cannot_encode_fails_only_its_own_plugin(
    tmp_path: Path,
) -> None:
    """Defence in depth behind the client's checks: a value strict JSON refuses (NaN) must not
    roll back the transaction that carries the other plugins' snapshots."""
    config = HostConfig(
        plugins_root=PLUGINS, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(90):
        async with (
            PluginHost(config) as plugins,
            SQLiteRunStore(tmp_path / "runs.db") as store,
        ):
            await plugins.registry.refresh()
            run_id = await store.create_run(workflow_definition={"nodes": []})
            async with open_call(
                IntegrationRuntimeContext(
                    run_id, workflow_graph=_graph("recorder_all", "recorder_speech")
                ),
                plugins=plugins,
            ) as sessions:
                await run_scripted_call(
                    attach=lambda worker: [s.attach(worker) for s in sessions]  # type: ignore[func-returns-value]
                )
                broken = next(s for s in sessions if s.name == "recorder_speech")
                original = broken.on_call_finished

                async def with_nan(**kwargs: Any) -> dict[str, Any] | None:
                    snapshot = await original(**kwargs)
                    return {**(snapshot or {}), "recorder_speech": float("nan")}  # the seam

                broken.on_call_finished = with_nan  # type: ignore[method-assign]
                await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
            run = await store.get_run(run_id)
    assert run is not None
    assert run.logs["recorder_all"]["events"]
    assert run.logs["integration_recorder_speech"]["error"] == "ResultError"
    assert run.logs[LIVE_KEY]["recorder_speech"]["status"] == "error"
