"""Scale-out without pickle: `plugbox worker` against a password-protected redis-server.

A pickle planted in Redis (what a plugin that reached Redis could do) is never executed: the job is
marked failed and its marker never appears. A real job, enqueued as JSON, still completes.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from host.completion import SQLiteRunStore
from host.completion._arq import enqueue_run_integrations
from host.completion._arq_codec import decode_job
from host.completion._reaper import job_id

REDIS = shutil.which("redis-server")
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "redis-test-password-5c1e"
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server not installed (tools/system-deps.sh installs it)"
)


class Payload:
    """Unpickling this creates the directory `marker`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    assert REDIS is not None
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        anyio.run(_wait_for_redis, port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _wait_for_redis(port: int) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                async with Redis(host="127.0.0.1", port=port, password=PASSWORD) as client:
                    await client.ping()
                    return
            except (OSError, RedisConnectionError):
                await anyio.sleep(0.05)  # redis-server is starting; bounded


@pytest.fixture
def worker(tmp_path: Path, redis_port: int) -> Iterator[Path]:
    """`plugbox worker` (the real CLI) on an empty plugins root; yields its data directory."""
    data = tmp_path / "data"
    (tmp_path / "plugins").mkdir()
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLUGBOX_REDIS_URL": url}
    argv = [sys.executable, "-m", "host.cli", "worker", "--plugins", str(tmp_path / "plugins")]
    argv += ["--data-dir", str(data), "--policy", "strict"]
    process = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield data
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


async def _result(port: int, key: str) -> dict[str, object]:
    """The stored ARQ result of job `key`, waited for (bounded) while the worker runs."""
    with anyio.fail_after(90):
        async with Redis(host="127.0.0.1", port=port, password=PASSWORD) as client:
            while True:
                raw = await client.get(f"arq:result:{key}")
                if raw is not None:
                    return decode_job(raw)
                await anyio.sleep(0.1)


def test_the_payload_is_live_when_unpickled(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof)))
    assert proof.is_dir()


def test_a_planted_pickle_is_never_executed_by_plugbox_worker(
    tmp_path: Path, redis_port: int, worker: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(
        {"t": 1, "f": "run_integrations_job", "a": (Payload(marker),), "k": {}, "et": 1}
    )

    async def plant() -> dict[str, object]:
        async with Redis(host="127.0.0.1", port=redis_port, password=PASSWORD) as client:
            await client.set("arq:job:planted", payload)
            await client.zadd("arq:queue", {"planted": int(time.time() * 1000)})
        return await _result(redis_port, "planted")

    result = anyio.run(plant)
    assert result["s"] is False
    assert "DeserializationError" in str(result["r"])
    assert not marker.exists()


def test_a_json_job_completes_through_the_password_protected_redis(
    redis_port: int, worker: Path
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0"

    async def enqueue_and_wait() -> dict[str, object]:
        async with SQLiteRunStore(worker / "runs.sqlite3") as store:
            run_id = await store.create_run(workflow_definition={"nodes": [], "edges": []})
        assert await enqueue_run_integrations(run_id, redis_url=url)
        async with Redis(host="127.0.0.1", port=redis_port, password=PASSWORD) as client:
            raw = await client.get(f"arq:job:{job_id(run_id)}")
            assert raw is None or raw.startswith(b"{")  # JSON on the wire, not a pickle
        return await _result(redis_port, job_id(run_id))

    result = anyio.run(enqueue_and_wait)
    assert result["s"] is True, result
    assert result["f"] == "run_integrations_job"


def test_without_the_password_redis_refuses(redis_port: int) -> None:
    async def unauthenticated() -> None:
        async with Redis(host="127.0.0.1", port=redis_port) as client:
            await client.ping()

    with pytest.raises(AuthenticationError):
        anyio.run(unauthenticated)
