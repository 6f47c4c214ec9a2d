"""Testing helpers, checking side: the report types and the driver the expectations use.

Contract: `_Checker` drives one served package over the wire (validate, runtime open/finish,
completion) with realistic contexts: a run row with logs, usage_info and recording_url, a graph,
a user_config with provider/model sections, context messages. `find_toggle` finds a node's enable
toggle in its spec (`enabled`, `<type>_enabled`, `<package>_enabled`, or the one default-true
`*_enabled` boolean); `mentions` finds a node id anywhere in a result (a key, a `<prefix>_<id>`
key, or a `node_id` value).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import (
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    Method,
    NodeTypeInfo,
    RuntimeContextWire,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    SpecResult,
    ValidateItem,
    ValidateParams,
    ValidateResult,
)
from ._client import Caller

CHECK_MESSAGES = [
    {"role": "system", "content": "You are a helpful agent."},
    {"role": "user", "content": "Hello, I would like to book a table."},
    {"role": "assistant", "content": "Of course. For how many people?"},
]


@dataclass
class Expectation:
    name: str
    status: str  # "passed" | "failed" | "skipped" | "warning"
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

    def warnings(self) -> list[Expectation]:
        return [e for e in self.expectations if e.status == "warning"]

    def status(self, name: str) -> str:
        return next(e.status for e in self.expectations if e.name == name)

    def raise_for_failures(self) -> None:
        if not self.ok:
            lines = "; ".join(f"{e.name}: {e.message}" for e in self.failures())
            raise AssertionError(f"package {self.package!r} breaks the contract: {lines}")


class ExpectationFailed(Exception):
    """Raised inside a check; its message says what is broken."""


class Warned(Exception):
    """Raised inside a check that passes with warnings; its message lists them."""


Check = Callable[["_Checker"], Awaitable[str]]


def find_toggle(info: NodeTypeInfo, package: str) -> str | None:
    """The boolean property that switches a node on and off, if the spec shows one."""
    booleans = {
        p["name"]: p for p in info.spec.get("properties") or [] if p.get("type") == "boolean"
    }
    for name in ("enabled", f"{info.type_name}_enabled", f"{package}_enabled"):
        if name in booleans:
            return name
    candidates = [n for n, p in booleans.items() if n.endswith("_enabled") and p.get("default")]
    return candidates[0] if len(candidates) == 1 else None


def mentions(value: Any, node_id: str) -> bool:
    """Whether `node_id` appears anywhere in a result: key, `<prefix>_<id>` key, `node_id`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == node_id or str(key).endswith(f"_{node_id}"):
                return True
            if key == "node_id" and item == node_id:
                return True
            if mentions(item, node_id):
                return True
    if isinstance(value, list):
        return any(mentions(item, node_id) for item in value)
    return False


@dataclass
class _Checker:
    client: Caller
    spec: SpecResult
    snapshot: dict[str, Any] = field(default_factory=dict)

    def toggles(self) -> dict[str, str | None]:
        return {
            info.type_name: find_toggle(info, self.spec.package_name) for info in self.spec.nodes
        }

    def example_nodes(self, *, enabled: bool = True) -> list[dict[str, Any]]:
        nodes = []
        toggles = self.toggles()
        for info in self.spec.nodes:
            for index, example in enumerate(info.spec.get("examples") or []):
                data = dict(example["data"])
                if toggles[info.type_name]:
                    data[str(toggles[info.type_name])] = enabled
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

    def run_row(self) -> dict[str, Any]:
        return {
            "id": 1,
            "mode": "check",
            "logs": dict(self.snapshot),
            "annotations": {},
            "usage_info": {"llm": {"prompt_tokens": 120, "completion_tokens": 40}},
            "recording_url": "recordings/1.wav",
            "initial_context": {},
            "gathered_context": {"call_disposition": "completed"},
        }

    async def complete(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        context = CompletionContextWire(
            workflow_run_id=1,
            workflow_run=self.run_row(),
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

    async def open_runtime(self, session_id: str, nodes: list[dict[str, Any]]) -> list[str]:
        if hasattr(self.client, "context_messages"):
            self.client.context_messages = CHECK_MESSAGES
        context = RuntimeContextWire(
            workflow_run_id=1,
            workflow_run=self.run_row(),
            workflow_graph={"nodes": nodes, "edges": []},
            run_definition={"id": 1, "version_number": 3},
            user_config={
                "llm": {"provider": "openai", "model": "gpt-4o-mini"},
                "stt": {"provider": "deepgram", "model": "nova-2"},
                "tts": {"provider": "cartesia", "model": "sonic"},
            },
        )
        opened: RuntimeOpenResult = await self.client.call(
            Method.RUNTIME_OPEN,
            RuntimeOpenParams(session_id, context),
            result_type=RuntimeOpenResult,
        )
        return opened.sessions

    async def finish_runtime(self, session_id: str) -> Any:
        finished: RuntimeFinishResult = await self.client.call(
            Method.RUNTIME_FINISH,
            RuntimeFinishParams(session_id, {"call_disposition": "completed"}),
            result_type=RuntimeFinishResult,
        )
        return finished.snapshot


def _strict_json(value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ExpectationFailed(f"result is not strict JSON: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpectationFailed("result is not finite")
