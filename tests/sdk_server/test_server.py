"""Plugin-side server over real subprocesses: clean wire, cookie, compat, threads, redaction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from sdk.protocol import (
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    Method,
    PingParams,
    PingResult,
    RemoteError,
    RuntimeContextWire,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    ValidateItem,
    ValidateParams,
    ValidateResult,
)
from sdk.testing import check_package, run_subprocess, synthetic_call_events

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]
SECRET = "hunter2-secret-value"


def nodes(**data: Any) -> list[dict[str, Any]]:
    return [{"id": "n1", "type": "noisy", "data": {"name": "n", "password": SECRET, **data}}]


def completion(**data: Any) -> CompletionRunParams:
    return CompletionRunParams(nodes(**data), CompletionContextWire(1, {}, {}, 1))


async def test_a_plugin_printing_everywhere_still_speaks_a_clean_protocol(tmp_path: Path) -> None:
    log = (tmp_path / "stderr.log").open("w")
    with anyio.fail_after(30):
        async with run_subprocess(
            "noisy", plugin_dir=FIXTURES / "noisy_plugin", stderr=log
        ) as client:
            valid: ValidateResult = await client.call(
                Method.VALIDATE,
                ValidateParams([ValidateItem("noisy", {"name": "x"})]),
                result_type=ValidateResult,
            )
            assert valid.results[0].ok
            opened: RuntimeOpenResult = await client.call(
                Method.RUNTIME_OPEN,
                RuntimeOpenParams("s", RuntimeContextWire(1)),
                result_type=RuntimeOpenResult,
            )
            assert opened.sessions == ["noisy"]
            await client.notify(
                Method.RUNTIME_EVENTS, RuntimeEventsParams("s", synthetic_call_events(1))
            )
            finished: RuntimeFinishResult = await client.call(
                Method.RUNTIME_FINISH, RuntimeFinishParams("s", {}), result_type=RuntimeFinishResult
            )
            assert finished.snapshot == {"noisy": {"ok": True}}
            done: CompletionRunResult = await client.call(
                Method.COMPLETION_RUN, completion(), result_type=CompletionRunResult
            )
            assert done.result == {"n1": {"node_id": "n1", "ok": True}}
            assert client.session.parse_failures == 0
    log.close()
    noise = (tmp_path / "stderr.log").read_text()
    for where in (
        "import",
        "create_runtime_sessions",
        "on_event",
        "on_call_finished",
        "run_completion",
    ):
        for how in ("print", "os.write", "printf"):
            assert f"noisy {how} in {where}" in noise


async def test_a_slow_sync_handler_does_not_block_ping() -> None:
    with anyio.fail_after(30):
        async with run_subprocess("noisy", plugin_dir=FIXTURES / "noisy_plugin") as client:
            finished = anyio.Event()

            async def slow() -> None:
                await client.call(
                    Method.COMPLETION_RUN, completion(mode="slow"), result_type=CompletionRunResult
                )
                finished.set()

            async with anyio.create_task_group() as group:
                group.start_soon(slow)
                ping: PingResult = await client.call(
                    Method.PING, PingParams(), result_type=PingResult
                )
                assert ping.pid > 0
                assert not finished.is_set()  # the 3 s handler is still running in its thread


async def test_secrets_never_leave_the_plugin_in_logs_or_tracebacks(tmp_path: Path) -> None:
    log = (tmp_path / "stderr.log").open("w")
    with anyio.fail_after(30):
        async with run_subprocess(
            "noisy", plugin_dir=FIXTURES / "noisy_plugin", stderr=log
        ) as client:
            with pytest.raises(RemoteError) as caught:
                await client.call(
                    Method.COMPLETION_RUN, completion(mode="leak"), result_type=CompletionRunResult
                )
    log.close()
    assert "delivery refused" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in caught.value.remote_traceback
    assert "about to fail with" in (tmp_path / "stderr.log").read_text()
    assert SECRET not in (tmp_path / "stderr.log").read_text()


def test_the_server_refuses_to_run_without_the_host_cookie() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PLUGBOX_COOKIE"}
    done = subprocess.run(
        [sys.executable, "-m", "sdk.serve", "noisy"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("this is a plugbox plugin; the plugbox host starts it")
    assert len(done.stderr.strip().splitlines()) == 1


async def test_a_package_written_for_the_in_process_paths_serves_unmodified() -> None:
    with anyio.fail_after(30):
        async with run_subprocess(
            "compat_pkg", plugin_dir=FIXTURES / "compat_plugin", compat=True
        ) as client:
            spec = await client.spec()
            assert [n.type_name for n in spec.nodes] == ["legacy_crm"]
            assert spec.nodes[0].sensitive_fields == ["api_key"]
            params = CompletionRunParams(
                [
                    {
                        "id": "c",
                        "type": "legacy_crm",
                        "data": {"name": "c", "api_key": "crm-key-123456"},
                    }
                ],
                CompletionContextWire(42, {}, {}, 1),
            )
            done: CompletionRunResult = await client.call(
                Method.COMPLETION_RUN, params, result_type=CompletionRunResult
            )
    assert done.result == {"c": {"node_id": "c", "run": 42}}


def test_without_the_compat_aliases_the_legacy_package_does_not_import() -> None:
    code = "import compat_pkg"
    env = {**os.environ, "PYTHONPATH": f"{FIXTURES / 'compat_plugin'}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert "ModuleNotFoundError: No module named 'api'" in done.stderr


def test_check_package_passes_a_good_plugin_and_names_the_expectation_a_bad_one_breaks() -> None:
    assert check_package(REPO / "plugins" / "call_qa").ok
    bad = check_package(FIXTURES / "bad_plugins" / "no_skip")
    assert [e.name for e in bad.failures()] == ["disabled-node skip"]
    with pytest.raises(AssertionError, match="disabled-node skip"):
        bad.raise_for_failures()
