"""Supervisor logic on the in-memory runner: crash, restart, breaker, deadlines, shutdown ladder.

No process is started here (`host.testing.FakeRunner` is the seam); `test_supervisor.py` keeps
the same behaviours proven on real sandboxed processes.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

import host._process as process_module
from host import HostConfig, PluginHost, ProcessState
from host.client import LiveSession
from host.runtime import IntegrationRuntimeContext
from host.testing import FakePlugin, FakeRunner
from sdk.protocol import (
    Calls,
    CircuitOpen,
    HandshakeError,
    PingParams,
    PluginCrashed,
    PluginTimeout,
    RuntimeOpenResult,
    SecretScrubber,
)

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"


@asynccontextmanager
async def fake_host(
    tmp_path: Path, plugins: Mapping[str, FakePlugin]
) -> AsyncIterator[tuple[PluginHost, FakeRunner]]:
    config = HostConfig(
        plugins_root=FIXTURES, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(10):
        async with FakeRunner(plugins) as runner, PluginHost(config, runner=runner) as host:
            yield host, runner


async def test_a_crash_fails_the_call_and_the_next_call_restarts_the_plugin(
    tmp_path: Path,
) -> None:
    crashing = FakePlugin(crash_on=Calls.COMPLETION_RUN.name, exit_code=3, stderr=b"boom\n")
    async with fake_host(tmp_path, {"misbehaving": crashing}) as (plugins, runner):
        handle = plugins.get("misbehaving")
        with pytest.raises(PluginCrashed, match="exited with code 3") as caught:
            await handle.call(Calls.COMPLETION_RUN, None)  # type: ignore[arg-type]
        assert "boom" in caught.value.data["stderr_tail"]
        assert handle.state is ProcessState.CRASHED
        ping = await handle.call(Calls.PING, PingParams())
        assert ping.pid == runner.of("misbehaving")[1].pid
        assert (handle.starts, handle.restarts) == (2, 1)


async def test_repeated_crashes_open_the_circuit_and_calls_fail_fast(tmp_path: Path) -> None:
    dying = FakePlugin(crash_on=Calls.INITIALIZE.name)
    async with fake_host(tmp_path, {"misbehaving": dying}) as (plugins, runner):
        handle = plugins.get("misbehaving")
        for _ in range(5):  # the breaker's limit
            with pytest.raises(HandshakeError):
                await handle.call(Calls.PING, PingParams())
        with pytest.raises(CircuitOpen):
            await handle.call(Calls.PING, PingParams())
        assert len(runner.of("misbehaving")) == 5  # the open circuit started nothing


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        (FakePlugin(hang_on=Calls.INITIALIZE.name), "no handshake within 0.2 s"),
        (FakePlugin(protocol_version="99"), "protocol version mismatch: plugin chose '99'"),
        (FakePlugin(crash_on=Calls.INITIALIZE.name, exit_code=3), "exited with code 3"),
    ],
)
async def test_a_broken_handshake_is_a_typed_error_naming_the_cause(
    tmp_path: Path, behaviour: FakePlugin, cause: str
) -> None:
    async with fake_host(tmp_path, {"misbehaving": behaviour}) as (plugins, runner):
        handle = plugins.get("misbehaving")
        limits = handle.manifest.limits.model_copy(update={"startup_timeout_s": 0.2})
        handle.manifest = handle.manifest.model_copy(update={"limits": limits})
        with pytest.raises(HandshakeError, match=cause) as caught:
            await handle.call(Calls.PING, PingParams())
        assert caught.value.plugin == "misbehaving"
        assert handle.state is ProcessState.CRASHED
        assert runner.of("misbehaving")[0].signals[-1] == signal.SIGKILL  # nothing left behind


async def test_a_hanging_call_times_out_and_a_dead_ping_restarts_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import host._supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "LIVENESS_PING_S", 0.05)
    hung = FakePlugin(hang_on=Calls.SPEC.name)
    async with fake_host(tmp_path, {"misbehaving": hung}) as (plugins, runner):
        handle = plugins.get("misbehaving")
        with pytest.raises(PluginTimeout):
            await handle.call(Calls.SPEC, None, timeout=0.05)  # type: ignore[arg-type]
        assert handle.state is ProcessState.READY  # it still answers ping: it stays
        assert runner.of("misbehaving")[0].returncode is None


@pytest.mark.parametrize(
    ("behaviour", "signals"),
    [
        (FakePlugin(), []),
        (FakePlugin(ignore_shutdown=True), []),  # stdin EOF ends it
        (FakePlugin(ignore_shutdown=True, ignore_eof=True), [signal.SIGTERM]),
        (
            FakePlugin(ignore_shutdown=True, ignore_eof=True, ignore_sigterm=True),
            [signal.SIGTERM, signal.SIGKILL],
        ),
    ],
)
async def test_the_shutdown_ladder_climbs_only_as_far_as_it_must(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    behaviour: FakePlugin,
    signals: list[int],
) -> None:
    monkeypatch.setattr(process_module, "EXIT_GRACE_S", 0.05)
    monkeypatch.setattr(process_module, "SHUTDOWN_REPLY_S", 0.05)
    async with fake_host(tmp_path, {"healthy": behaviour}) as (plugins, runner):
        handle = plugins.get("healthy")
        await handle.call(Calls.PING, PingParams())
        await handle.aclose()
        (process,) = runner.of("healthy")
        assert process.returncode is not None
        # The ladder's steps, then the group kill every exit ends with (grandchildren die too).
        assert process.signals == [*signals, signal.SIGKILL]
        assert handle.state is ProcessState.STOPPED


async def test_a_live_session_ends_with_its_process_and_nothing_restarts(tmp_path: Path) -> None:
    opens = FakePlugin(answers={Calls.RUNTIME_OPEN.name: lambda _: RuntimeOpenResult(["s"])})
    async with fake_host(tmp_path, {"healthy": opens}) as (plugins, runner):
        await plugins.registry.refresh()
        client = plugins.client("healthy")
        live = await client.open_live(IntegrationRuntimeContext(1), secrets=SecretScrubber())
        assert isinstance(live, LiveSession)
        runner.of("healthy")[0].kill_group(signal.SIGKILL)
        with anyio.fail_after(5):
            await live.process.exited.wait()
        with pytest.raises(PluginCrashed, match="SIGKILL"):
            await live.send([], 0)
        assert len(runner.of("healthy")) == 1  # the send did not start a new process
