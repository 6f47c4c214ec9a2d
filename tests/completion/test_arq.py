"""Scale-out on ARQ: two worker processes against a real redis-server on 127.0.0.1, one killed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from host.completion import SQLiteRunStore
from host.completion._arq import enqueue_run_integrations

REDIS = shutil.which("redis-server")
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "completion_plugins"
REPO = Path(__file__).resolve().parents[2]
JOBS = 200
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server not installed (tools/system-deps.sh installs it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    assert REDIS is not None
    server = subprocess.Popen(
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        anyio.run(_wait_for_port, port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _wait_for_port(port: int) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)  # redis-server is starting; bounded
                continue
            await stream.aclose()
            return


WORKER = textwrap.dedent(
    """
    import logging
    import sys
    from pathlib import Path
    from arq.worker import run_worker
    from host import HostConfig
    from host.completion._arq import worker_settings

    redis, plugins, data = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING)  # failures reach the test's log files
    config = HostConfig(plugins_root=Path(plugins), data_dir=Path(data), use_venvs=False,
                        idle_timeout_s=None,
                        grants_file=Path(plugins).parent / "completion_grants.toml")
    settings = worker_settings(redis_url=redis, host_config=config,
                               store_path=Path(data) / "runs.db", job_timeout_s=20,
                               start_budget_s=10)
    run_worker(settings)
    """
)


def recorded(db_path: Path) -> Counter[int]:
    with sqlite3.connect(db_path, timeout=30) as db:
        return Counter(run_id for (run_id,) in db.execute("SELECT run_id FROM node_results"))


def test_two_workers_complete_every_job_exactly_once_when_one_is_killed(
    tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "data"

    async def prepare() -> list[int]:
        async with SQLiteRunStore(data / "runs.db") as store:
            definition = {"nodes": [{"id": "q", "type": "qa_probe", "data": {"name": "q"}}]}
            ids = [await store.create_run(workflow_definition=definition) for _ in range(JOBS)]
        for run_id in ids:
            assert await enqueue_run_integrations(run_id, redis_url=redis_url)
        assert not await enqueue_run_integrations(ids[0], redis_url=redis_url)  # duplicate: no-op
        return ids

    ids = anyio.run(prepare)
    argv = [sys.executable, "-c", WORKER, redis_url, str(PLUGINS), str(data)]
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = []
    for log in logs:
        with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
            workers.append(
                subprocess.Popen(
                    argv,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                )
            )
    try:
        anyio.run(_until, data, JOBS // 5, logs)
        os.killpg(workers[0].pid, signal.SIGKILL)  # mid-way, jobs in flight
        workers[0].wait(timeout=10)
        anyio.run(_until, data, JOBS, logs)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)
    counts = recorded(data / "runs.db")
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}  # every run's node recorded exactly once
    log = data / "plugins" / "qa_probe" / "data" / "executions.log"
    executions = Counter(int(line) for line in log.read_text().split())
    assert set(executions) == set(ids)
    assert max(executions.values()) <= 2  # only jobs in flight on the killed worker ran twice


async def _until(data: Path, done: int, logs: list[Path]) -> None:
    # Bounded: a killed worker's jobs come back when ARQ's in-progress mark expires (job
    # deadline + start-up budget + 10 s); the rest of the bound is for a busy 2-core machine.
    with anyio.move_on_after(240):
        while len(recorded(data / "runs.db")) < done:  # noqa: ASYNC110 - another process writes
            await anyio.sleep(0.1)
        return
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    pytest.fail(f"{len(recorded(data / 'runs.db'))} of {done} runs recorded\n{tails}")
