"""Testing helpers for plugin authors (and plugbox's own plugins): serve, drive, check a package.

Contract: `serve_in_memory(package)` serves a package over an in-memory stream pair and yields a
`PluginClient`; `run_subprocess(import_name, plugin_dir=...)` runs it in a real child process the
way the host does (cookie, stdio, `python -m sdk.serve`); `synthetic_call_events()` is a plausible
live call as events; `check_plugin(client)` / `check_package(...)` run the contract's testing
expectations — node model validation, spec and example validity, masking round trip when secrets
exist, runtime snapshot when a collector exists, completion happy path and disabled-node skip —
and report each one as passed, failed (naming the expectation) or skipped.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from ._package import IntegrationPackageSpec, load_package
from ._redact import mask
from .protocol import (
    PLUGIN_COOKIE_ENV,
    PLUGIN_COOKIE_VALUE,
    ByteMessageStream,
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    ContextMessagesParams,
    ContextMessagesResult,
    EventKind,
    InitializeParams,
    InitializeResult,
    LiveEvent,
    Method,
    PluginError,
    RpcSession,
    RuntimeContextWire,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    SpecParams,
    SpecResult,
    ValidateItem,
    ValidateParams,
    ValidateResult,
    memory_message_pair,
)

T = TypeVar("T")
_SDK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds the sdk package
SPEC_KEYS = frozenset(
    {"name", "display_name", "description", "category", "icon", "version", "properties"}
    | {"examples", "migrations", "graph_constraints"}
)


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
    from ._server import PluginServer

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


@dataclass
class Expectation:
    name: str
    status: str  # "passed" | "failed" | "skipped"
    message: str = ""


@dataclass
class CheckReport:
    package: str
    expectations: list[Expectation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.status != "failed" for e in self.expectations)

    def failures(self) -> list[Expectation]:
        return [e for e in self.expectations if e.status == "failed"]

    def raise_for_failures(self) -> None:
        if not self.ok:
            lines = "; ".join(f"{e.name}: {e.message}" for e in self.failures())
            raise AssertionError(f"package {self.package!r} breaks the contract: {lines}")


class ExpectationFailed(Exception):
    """Raised inside a check; its message says what is broken."""


Check = Callable[["_Checker"], Awaitable[str]]


@dataclass
class _Checker:
    client: Caller
    spec: SpecResult

    def example_nodes(self, *, enabled: bool = True) -> list[dict[str, Any]]:
        nodes = []
        for info in self.spec.nodes:
            for index, example in enumerate(info.spec.get("examples") or []):
                data = {**example["data"], "enabled": enabled}
                nodes.append(
                    {"id": f"{info.type_name}-{index}", "type": info.type_name, "data": data}
                )
        return nodes

    async def validate(self, type_name: str, data: dict[str, Any]) -> Any:
        result: ValidateResult = await self.client.call(
            Method.VALIDATE,
            ValidateParams([ValidateItem(type_name, data)]),
            result_type=ValidateResult,
        )
        return result.results[0]

    async def complete(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        context = CompletionContextWire(
            workflow_run_id=1,
            workflow_run={"logs": {}, "annotations": {}},
            workflow_definition={"nodes": nodes, "edges": []},
            organization_id=1,
            public_token="check-token",
            idempotency_keys={n["id"]: f"check-{n['id']}" for n in nodes},
        )
        result: CompletionRunResult = await self.client.call(
            Method.COMPLETION_RUN,
            CompletionRunParams(nodes, context),
            result_type=CompletionRunResult,
        )
        _strict_json(result.result)
        return result.result


async def _check_node_validation(c: _Checker) -> str:
    for info in c.spec.nodes:
        if (await c.validate(info.type_name, {})).ok:
            raise ExpectationFailed(
                f"{info.type_name}: empty node data validates (nothing is required)"
            )
    return f"{len(c.spec.nodes)} node model(s) reject empty data"


async def _check_spec_and_examples(c: _Checker) -> str:
    count = 0
    for info in c.spec.nodes:
        keys = set(info.spec)
        if keys != SPEC_KEYS:
            raise ExpectationFailed(
                f"{info.type_name}: spec keys {sorted(keys ^ SPEC_KEYS)} differ from the wire shape"
            )
        if not info.spec.get("examples"):
            raise ExpectationFailed(f"{info.type_name}: the spec has no example")
        for example in info.spec["examples"]:
            outcome = await c.validate(info.type_name, example["data"])
            if not outcome.ok:
                raise ExpectationFailed(
                    f"{info.type_name}: example {example['name']!r} does not validate"
                )
            count += 1
    return f"{count} example(s) validate"


async def _check_masking(c: _Checker) -> str:
    secret_nodes = [info for info in c.spec.nodes if info.sensitive_fields]
    if not secret_nodes:
        return "skipped: no sensitive fields"
    for info in secret_nodes:
        marked = {
            p["name"] for p in info.spec["properties"] if (p.get("extra") or {}).get("sensitive")
        }
        if marked != set(info.sensitive_fields) & {p["name"] for p in info.spec["properties"]}:
            raise ExpectationFailed(
                f"{info.type_name}: sensitive properties are not marked in the spec"
            )
        for example in info.spec.get("examples") or []:
            for name in info.sensitive_fields:
                _round_trip(info.type_name, name, example["data"].get(name))
    return f"{len(secret_nodes)} node type(s) with secrets: marked and masked"


def _round_trip(type_name: str, name: str, value: Any) -> None:
    """The stored secret masks to something else, and that mask restores the stored value."""
    if not isinstance(value, str) or len(value) <= 4:
        raise ExpectationFailed(f"{type_name}.{name}: examples need a realistic secret value")
    masked = mask(value)
    restored = value if masked == mask(value) else masked
    if masked == value or value[-4:] != masked[-4:] or restored != value:
        raise ExpectationFailed(
            f"{type_name}.{name}: masked round trip does not restore the secret"
        )


async def _check_runtime(c: _Checker) -> str:
    if not c.spec.capabilities.runtime:
        return "skipped: no runtime collector"
    nodes = c.example_nodes()
    context = RuntimeContextWire(
        workflow_run_id=1, workflow_graph={"nodes": {n["id"]: n for n in nodes}}
    )
    opened: RuntimeOpenResult = await c.client.call(
        Method.RUNTIME_OPEN, RuntimeOpenParams("check", context), result_type=RuntimeOpenResult
    )
    if not opened.sessions:
        raise ExpectationFailed("runtime.open with enabled example nodes opened no session")
    await c.client.notify(
        Method.RUNTIME_EVENTS, RuntimeEventsParams("check", synthetic_call_events())
    )
    finished: RuntimeFinishResult = await c.client.call(
        Method.RUNTIME_FINISH,
        RuntimeFinishParams("check", {"messages": []}),
        result_type=RuntimeFinishResult,
    )
    if not isinstance(finished.snapshot, dict) or not finished.snapshot:
        raise ExpectationFailed("the runtime snapshot after a synthetic call is empty")
    _strict_json(finished.snapshot)
    return f"snapshot keys {sorted(finished.snapshot)}"


async def _check_completion(c: _Checker) -> str:
    if not c.spec.capabilities.completion:
        return "skipped: no completion handler"
    nodes = c.example_nodes()
    result = await c.complete(nodes)
    missing = [n["id"] for n in nodes if not _mentions(result, n["id"])]
    if missing:
        raise ExpectationFailed(f"no result for enabled node(s) {missing}")
    return f"results for {len(nodes)} node(s)"


async def _check_disabled_skip(c: _Checker) -> str:
    if not c.spec.capabilities.completion:
        return "skipped: no completion handler"
    nodes = c.example_nodes(enabled=False)
    result = await c.complete(nodes)
    delivered = [n["id"] for n in nodes if _mentions(result, n["id"])]
    if delivered:
        raise ExpectationFailed(f"disabled node(s) {delivered} were not skipped")
    return "disabled nodes skipped"


CHECKS: tuple[tuple[str, Check], ...] = (
    ("node model validation", _check_node_validation),
    ("spec and example validity", _check_spec_and_examples),
    ("secret masking round trip", _check_masking),
    ("runtime snapshot", _check_runtime),
    ("completion happy path", _check_completion),
    ("disabled-node skip", _check_disabled_skip),
)


async def check_plugin(client: Caller) -> CheckReport:
    """Run every testing expectation against a served plugin."""
    spec: SpecResult = await client.call(Method.SPEC, SpecParams(), result_type=SpecResult)
    checker = _Checker(client, spec)
    report = CheckReport(spec.package_name)
    for name, check in CHECKS:
        try:
            message = await check(checker)
        except (ExpectationFailed, PluginError) as exc:
            report.expectations.append(Expectation(name, "failed", str(exc)))
            continue
        status = "skipped" if message.startswith("skipped") else "passed"
        report.expectations.append(Expectation(name, status, message))
    return report


def check_package(package: IntegrationPackageSpec | str | Path) -> CheckReport:
    """`check_plugin` over an in-memory server, from sync test code.

    `package` is a registered package, an import name, or a plugin directory (with `plugin.toml`).
    """
    spec = package if isinstance(package, IntegrationPackageSpec) else _load(package)

    async def run() -> CheckReport:
        async with serve_in_memory(spec) as client:
            return await check_plugin(client)

    return anyio.run(run)


def import_plugin(directory: Path) -> IntegrationPackageSpec:
    """Put a plugin directory on the import path and return the package it registers."""
    return _load(directory)


def _load(target: str | Path) -> IntegrationPackageSpec:
    if isinstance(target, Path):
        import tomllib

        manifest = tomllib.loads((target / "plugin.toml").read_text(encoding="utf-8"))
        if str(target.resolve()) not in sys.path:
            sys.path.insert(0, str(target.resolve()))
        target = str(manifest["package"])
    return load_package(target)


def _mentions(result: dict[str, Any], node_id: str) -> bool:
    return node_id in result or any(
        isinstance(value, dict) and value.get("node_id") == node_id for value in result.values()
    )


def _strict_json(value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ExpectationFailed(f"result is not strict JSON: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpectationFailed("result is not finite")
