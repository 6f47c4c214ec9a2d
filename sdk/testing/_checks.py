"""Testing helpers, checking side: the contract's testing expectations, run against a package.

Contract: `check_plugin(client)` / `check_package(...)` run node model validation, spec and
example validity, the masking round trip when secrets exist, the runtime snapshot when a
collector exists, the completion happy path and the disabled-node skip, and report each one as
passed, failed (naming the expectation) or skipped. `import_plugin(directory)` loads a plugin
folder's package in this process.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .._package import IntegrationPackageSpec, load_package
from .._redact import mask
from ..protocol import (
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    Method,
    PluginError,
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
)
from ._client import Caller, serve_in_memory, synthetic_call_events

SPEC_KEYS = frozenset(
    {"name", "display_name", "description", "category", "icon", "version", "properties"}
    | {"examples", "migrations", "graph_constraints"}
)


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
