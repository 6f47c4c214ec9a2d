"""Testing helpers, driving side: a typed client over a plugin session, in memory or in a child.

Contract: `serve_in_memory(package)` serves a package over an in-memory stream pair and yields a
`PluginClient`; `run_subprocess(import_name, plugin_dir=...)` runs it in a real child process the
way the host does (cookie, stdio, `python -m sdk.serve`); `synthetic_call_events()` is a plausible
live call as events. `Caller` is what the checks need from either side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from .._package import IntegrationPackageSpec
from ..protocol import (
    PLUGIN_COOKIE_ENV,
    PLUGIN_COOKIE_VALUE,
    ByteMessageStream,
    ContextMessagesParams,
    ContextMessagesResult,
    EventKind,
    InitializeParams,
    InitializeResult,
    LiveEvent,
    Method,
    RpcSession,
    SpecParams,
    SpecResult,
    memory_message_pair,
)

T = TypeVar("T")
_SDK_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds the sdk package


class Caller(Protocol):
    """What the checks need: a host-side caller (a `PluginClient` or the host's `PluginHandle`)."""

    async def call(self, method: str, params: Any, *, result_type: Any = Any) -> Any: ...

    async def notify(self, method: str, params: Any) -> None: ...


class PluginClient:
    """A typed host-side client over one plugin session."""

    def __init__(self, session: RpcSession) -> None:
        self.session = session
        self.context_messages: list[dict[str, Any]] = []
        session.on_request(
            Method.CONTEXT_MESSAGES, self._messages, params_type=ContextMessagesParams
        )

    async def _messages(self, _: ContextMessagesParams) -> ContextMessagesResult:
        return ContextMessagesResult(messages=self.context_messages)

    async def call(
        self, method: str, params: Any, *, result_type: Any = Any, timeout: float = 30.0
    ) -> Any:
        return await self.session.request(method, params, result_type=result_type, timeout=timeout)

    async def notify(self, method: str, params: Any) -> None:
        await self.session.notify(method, params)

    async def initialize(self) -> InitializeResult:
        result: InitializeResult = await self.call(
            Method.INITIALIZE,
            InitializeParams(protocol_versions=["1"]),
            result_type=InitializeResult,
        )
        return result

    async def spec(self) -> SpecResult:
        result: SpecResult = await self.call(Method.SPEC, SpecParams(), result_type=SpecResult)
        return result


@asynccontextmanager
async def serve_in_memory(package: IntegrationPackageSpec) -> AsyncIterator[PluginClient]:
    """Serve `package` in this process over in-memory streams; yield an initialized client."""
    from .._server import PluginServer

    host_stream, plugin_stream = memory_message_pair()
    plugin_session = RpcSession(plugin_stream, name="host")
    PluginServer(package).attach(plugin_session)
    client = PluginClient(RpcSession(host_stream, name=package.name))
    async with plugin_session, client.session:
        await client.initialize()
        yield client


@asynccontextmanager
async def run_subprocess(
    import_name: str,
    *,
    plugin_dir: Path,
    env: dict[str, str] | None = None,
    compat: bool = False,
    stderr: Any = None,
) -> AsyncIterator[PluginClient]:
    """Run a package in a real child process as the host would; yield an initialized client.

    `stderr` is where the plugin's log lines go (a file object; default: this process's stderr).
    """
    child_env = {
        **os.environ,
        PLUGIN_COOKIE_ENV: PLUGIN_COOKIE_VALUE,
        "PYTHONPATH": os.pathsep.join([str(plugin_dir), _SDK_ROOT]),
        **({"PLUGBOX_COMPAT": "1"} if compat else {}),
        **(env or {}),
    }
    process = await anyio.open_process(
        [sys.executable, "-m", "sdk.serve", import_name], env=child_env, stderr=stderr
    )
    assert process.stdout is not None
    assert process.stdin is not None
    client = PluginClient(
        RpcSession(ByteMessageStream(process.stdout, process.stdin), name=import_name)
    )
    try:
        async with client.session:
            await client.initialize()
            yield client
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()


def synthetic_call_events(turns: int = 3) -> list[LiveEvent]:
    """A plausible live call as events: turns with speech, transcripts, a tool call, metrics."""
    kinds_at: list[tuple[str, float, dict[str, Any]]] = [(EventKind.CALL_STARTED, 0.0, {})]
    t = 100.0
    for turn in range(turns):
        text = f"caller sentence {turn}"
        kinds_at += [
            (EventKind.USER_STARTED_SPEAKING, t, {}),
            (
                EventKind.TRANSCRIPT_INTERIM,
                t + 200,
                {"text": text[:6], "user_id": "caller", "language": None},
            ),
            (
                EventKind.TRANSCRIPT_FINAL,
                t + 400,
                {"text": text, "user_id": "caller", "language": None},
            ),
            (EventKind.USER_STOPPED_SPEAKING, t + 450, {}),
            (EventKind.LLM_RESPONSE_STARTED, t + 500, {}),
            (
                EventKind.TOOL_CALL_STARTED,
                t + 520,
                {"tool_call_id": f"c{turn}", "function_name": "lookup", "arguments": {}},
            ),
            (
                EventKind.TOOL_CALL_RESULT,
                t + 560,
                {"tool_call_id": f"c{turn}", "function_name": "lookup", "result": {}},
            ),
            (EventKind.LLM_TEXT, t + 600, {"text": "Thank you for calling."}),
            (EventKind.LLM_RESPONSE_ENDED, t + 650, {}),
            (EventKind.BOT_STARTED_SPEAKING, t + 900, {}),
            (EventKind.TTS_TEXT, t + 910, {"text": "Thank you for calling."}),
            (EventKind.METRICS_TTFB, t + 920, {"processor": "llm", "model": "m", "seconds": 0.2}),
            (
                EventKind.METRICS_LLM_USAGE,
                t + 930,
                {
                    "processor": "llm",
                    "model": "m",
                    "prompt_tokens": 30,
                    "completion_tokens": 8,
                    "total_tokens": 38,
                },
            ),
            (
                EventKind.METRICS_TTS_USAGE,
                t + 940,
                {"processor": "tts", "model": "t", "characters": 22},
            ),
            (EventKind.BOT_STOPPED_SPEAKING, t + 1900, {}),
        ]
        t += 3000
    kinds_at.append((EventKind.INTERRUPTION, t - 1500, {}))
    kinds_at.append((EventKind.CALL_ENDED, t, {"reason": "end"}))
    ordered = sorted(kinds_at, key=lambda item: item[1])
    return [
        LiveEvent(kind, seq, t_ms, data) for seq, (kind, t_ms, data) in enumerate(ordered, start=1)
    ]
