"""The SQLite run store's own faults on a real file: a held lock, a full disk, a corrupt file.
The contract both backends keep is test_store.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from host.store import JobState, SQLiteRunStore, StoreError

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


async def _runs(store: SQLiteRunStore, n: int) -> list[int]:
    ids = [await store.create_run(workflow_definition={"nodes": []}) for _ in range(n)]
    for run_id in ids:
        assert await store.enqueue(run_id)
    return ids


async def test_a_lock_held_far_longer_than_the_busy_wait_is_waited_out(tmp_path: Path) -> None:
    """The old failure: a lock held over SQLite's 30 s busy timeout failed the job for good.
    Here the busy wait per try is 0.2 s and another connection holds the write lock 3 s (15x)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        db = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        held.set()
        release.wait(3.0)  # the injected fault: the lock is held this long
        db.execute("COMMIT")
        db.close()

    async with SQLiteRunStore(tmp_path / "r.db", busy_wait_s=0.2) as store:
        await _runs(store, 3)
        thread = threading.Thread(target=hold)
        thread.start()
        await anyio.to_thread.run_sync(held.wait)
        with anyio.fail_after(60):
            jobs = [await store.claim("w", lease_s=60, max_deaths=3) for _ in range(3)]
        thread.join()
        assert all(job is not None for job in jobs)
        assert store.faults >= 3  # it backed off instead of failing


async def test_the_writable_probe_sees_a_held_write_lock(tmp_path: Path) -> None:
    async with SQLiteRunStore(tmp_path / "r.db", busy_wait_s=0.1) as store:
        await store.check_writable()
        other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # held: the probe must not report the store writable
        try:
            with pytest.raises(TimeoutError), anyio.fail_after(1.0):
                await store.check_writable()
        finally:
            other.execute("COMMIT")
            other.close()
        await store.check_writable()


async def test_a_corrupt_store_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as caught:
        async with SQLiteRunStore(path):
            pass
    assert str(path) in str(caught.value)
    assert "NOTADB" in str(caught.value) or "not a database" in str(caught.value)
    cli = [sys.executable, "-m", "host.cli", "runs", "list", "--data-dir", str(tmp_path)]
    done = await anyio.run_process(cli, cwd=REPO, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 3, output
    assert str(path) in output.replace("\n", "")
    assert "Traceback" not in output


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def test_a_full_disk_is_waited_out_and_every_job_finishes_once_space_returns(
    tmp_path: Path, share_specs: Callable[[Path], Path]
) -> None:
    """The run store on a 1 MiB tmpfs, filled up while the worker runs (root mounts it)."""
    from host import HostConfig, PluginHost
    from host.completion import EmbeddedWorker

    from ._scaleout import GRANTS, PLUGINS, deliveries, ledger_definition

    full = tmp_path / "full"
    if not _mount_tmpfs(full, "1m"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    config = HostConfig(
        plugins_root=PLUGINS,
        data_dir=share_specs(tmp_path / "data"),  # specs: the session's cache
        use_venvs=False,
        idle_timeout_s=None,
        grants_file=GRANTS,
    )
    try:
        with anyio.fail_after(120):
            async with (
                PluginHost(config) as plugins,
                SQLiteRunStore(full / "runs.db", fault_budget_s=100) as store,
            ):
                ids = [
                    await store.create_run(workflow_definition=ledger_definition())
                    for _ in range(5)
                ]
                for run_id in ids:
                    await store.enqueue(run_id)
                filler = _fill(full / "filler")
                worker = EmbeddedWorker(store, plugins, concurrency=2)
                async with anyio.create_task_group() as group:
                    group.start_soon(worker.run)
                    while store.faults == 0:  # noqa: ASYNC110 - bounded by fail_after
                        await anyio.sleep(0.05)
                    assert worker.finished.total() < len(ids)
                    filler.unlink()  # space returns
                    while worker.finished.total() < len(ids):  # noqa: ASYNC110 - bounded
                        await anyio.sleep(0.05)
                    await worker.drain()
                jobs = [await store.get_job(run_id) for run_id in ids]
                states = {job.state if job else None for job in jobs}
    finally:
        await anyio.run_process(["umount", "-l", str(full)], check=False)
    assert states == {JobState.DONE}
    delivered = deliveries(tmp_path / "data")
    assert len(delivered) == 3 * len(ids)
    assert set(delivered.values()) == {1}


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
