"""The boundary: a plugin's client redacts what is sent, checks what comes back, and binds a live
session to the process that opened it (real plugin processes)."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from host import PluginHost
from host.client import MAX_RESULT_DEPTH, PluginClient, ResultError, check_result
from host.runtime import IntegrationRuntimeContext
from sdk.protocol import (
    ConnectionClosed,
    ContextMessagesParams,
    InvalidParams,
    LiveEvent,
    PluginCrashed,
    SecretScrubber,
)

if TYPE_CHECKING:
    from tests.conftest import HostFactory

pytestmark = pytest.mark.anyio
PLUGINS = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_plugins"
SECRET = "recorder-secret-000111"


def context(run_id: int = 1) -> IntegrationRuntimeContext:
    node = {"id": "r", "type": "recorder_all", "data": {"name": "r", "secret": SECRET}}
    return IntegrationRuntimeContext(
        run_id,
        workflow_graph={"nodes": [node]},
        context_messages_provider=lambda: [{"role": "user", "content": "hi"}],
    )


@pytest.fixture
async def plugins(make_host: HostFactory) -> AsyncIterator[PluginHost]:
    async with make_host(PLUGINS, deadline_s=90) as (host, _):
        yield host


async def test_a_crash_ends_the_live_session_of_that_process_and_nothing_reopens(
    plugins: PluginHost,
) -> None:
    client = plugins.client("recorder_all")
    live = await client.open_live(context(), secrets=SecretScrubber())
    assert live is not None
    starts = client.handle.starts
    live.process.process.kill_group(signal.SIGKILL)
    with anyio.fail_after(10):
        await live.process.exited.wait()
    assert isinstance(live.ended, PluginCrashed)
    with pytest.raises(PluginCrashed):
        await live.send([LiveEvent("llm.text", 1, 0.0, {"text": "x"})], 0)
    with pytest.raises(PluginCrashed):
        await live.finish({}, 0, timeout=5)
    assert client.handle.starts == starts  # neither the send nor the finish started a process
    assert client.handle.process is None
    with pytest.raises(InvalidParams):  # the run's provider is no longer reachable
        await client._context_messages(ContextMessagesParams(live.id))


async def test_a_restarted_plugin_serves_new_sessions_on_its_new_process(
    plugins: PluginHost,
) -> None:
    client = plugins.client("recorder_all")
    first = await client.open_live(context(1), secrets=SecretScrubber())
    assert first is not None
    await client.handle.aclose()  # stopped (e.g. idle): the session's process is gone
    assert first.lost() is not None
    second = await client.open_live(context(2), secrets=SecretScrubber())
    assert second is not None
    assert second.process is not first.process
    with pytest.raises(ConnectionClosed):
        await first.send([], 0)
    snapshot = await second.finish({}, 0, timeout=10)
    assert snapshot is not None
    assert snapshot["recorder_all"]["messages"] == 1


async def test_context_messages_are_served_only_for_the_plugins_own_open_sessions(
    plugins: PluginHost,
) -> None:
    mine = plugins.client("recorder_all")
    other = plugins.client("recorder_speech")
    live = await mine.open_live(context(), secrets=SecretScrubber())
    assert live is not None
    answer = await mine._context_messages(ContextMessagesParams(live.id))
    assert answer.messages == [{"role": "user", "content": "hi"}]
    with pytest.raises(InvalidParams):  # another plugin cannot read this run's context by id
        await other._context_messages(ContextMessagesParams(live.id))
    await live.finish({}, 0, timeout=10)
    with pytest.raises(InvalidParams):  # a finished session is closed
        await mine._context_messages(ContextMessagesParams(live.id))


async def test_what_is_sent_is_redacted_for_the_plugin_and_answers_are_scrubbed(
    plugins: PluginHost,
) -> None:
    client: PluginClient = plugins.client("recorder_all")
    foreign = {"id": "s", "type": "recorder_speech", "data": {"secret": SECRET + "-b"}}
    own = {"id": "r", "type": "recorder_all", "data": {"secret": SECRET}}
    sent = client.redact({"nodes": [own, foreign], "user_config": {"api_key": "sk-provider-1"}})
    assert sent["nodes"][0]["data"]["secret"] == SECRET  # its own node, in clear
    assert SECRET + "-b" not in str(sent)
    assert "sk-provider-1" not in str(sent)
    secrets = plugins.learn_secrets(definitions=({"nodes": [own]},))
    live = await client.open_live(context(), secrets=secrets)
    assert live is not None
    snapshot = await live.finish({}, 0, timeout=10)
    assert snapshot is not None
    assert SECRET not in str(snapshot)  # the plugin echoed its secret; the client masked it
    assert SECRET[-4:] in str(snapshot)


async def test_the_hosts_log_filter_masks_secrets_learnt_by_a_run_while_it_lives(
    plugins: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    run = plugins.learn_secrets(user_config={"llm": {"api_key": "sk-learnt-in-a-run"}})
    with caplog.at_level(logging.INFO, logger="plugbox.runtime"):
        logging.getLogger("plugbox.runtime").warning("provider said %s", "sk-learnt-in-a-run")
        plugins.forget_secrets(run)  # the run ended
        logging.getLogger("plugbox.runtime").warning("later: %s", "sk-learnt-in-a-run")
    assert "provider said **************-run" in caplog.text
    assert "provider said sk-learnt-in-a-run" not in caplog.text
    assert "later: sk-learnt-in-a-run" in caplog.text  # forgotten with its run
    assert run.scrub_text("sk-learnt-in-a-run") == "**************-run"  # the run's own still knows


async def test_after_many_runs_the_hosts_secret_set_has_not_grown(
    plugins: PluginHost, tmp_path: Path
) -> None:
    """Live calls and completion jobs, each with its own secret: the host's scrubber knows each
    while its run lives and none after; nothing accumulates."""
    from host.completion import SQLiteRunStore, run_integrations
    from host.runtime import finish_call, open_call

    baseline = plugins.scrubber.values()
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        for n in range(20):
            secret = f"per-run-secret-{n:04d}"
            node = {"id": "r", "type": "recorder_all", "data": {"name": "r", "secret": secret}}
            graph = {"nodes": [node]}
            run_id = await store.create_run(workflow_definition=graph)
            async with open_call(
                IntegrationRuntimeContext(
                    run_id, workflow_graph=graph, user_config={"llm": {"api_key": f"sk-{secret}"}}
                ),
                plugins=plugins,
            ) as sessions:
                assert sessions
                assert {
                    secret,
                    f"sk-{secret}",
                } <= plugins.scrubber.values()  # known during the call
                await finish_call(sessions, gathered_context={}, store=store, run_id=run_id)
            assert plugins.scrubber.values() == baseline  # the call ended: forgotten
            await run_integrations(run_id, plugins=plugins, store=store)
            assert plugins.scrubber.values() == baseline
    assert plugins.scrubber.known == len(baseline)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([], "expected a JSON object"),
        ({"x": float("nan")}, "not strict JSON"),
        ({"x": object()}, "not strict JSON"),
        ({"x": "y" * 2000}, "exceeds the limit"),
    ],
)
def test_an_unstorable_answer_is_refused_naming_the_plugin(value: Any, problem: str) -> None:
    with pytest.raises(ResultError, match=problem) as caught:
        check_result("p", value, max_bytes=1000)
    assert caught.value.plugin == "p"


def test_an_answer_nested_past_the_depth_limit_is_refused_without_recursion() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):  # deep enough to blow the JSON encoder's recursion
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ResultError, match="nested deeper"):
        check_result("p", deep)
    shallow: dict[str, Any] = {}
    node = shallow
    for _ in range(MAX_RESULT_DEPTH - 1):
        node["x"] = {}
        node = node["x"]
    assert check_result("p", shallow) is shallow
