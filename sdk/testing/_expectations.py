"""Testing helpers, the expectations: what `plugins check` verifies, one function each.

Contract: each check returns a one-line summary (starting with "skipped" when it does not apply,
with the reason), raises `ExpectationFailed` naming what is broken, or `Warned` listing the
warnings of a check that otherwise passes. `CHECKS` is the suite in order; the runtime check runs
before completion so the completion sees the runtime's snapshot in `workflow_run.logs`.
"""

from __future__ import annotations

import copy
from typing import Any

from ..protocol import Method, NodeTypeInfo, RuntimeEventsParams
from ._checker import Check, ExpectationFailed, Warned, _Checker, _strict_json, mentions
from ._client import synthetic_call_events
from ._lint import lint_spec, spec_shape_problems

NO_TOGGLE = (
    "no enable toggle in the spec (looked for `enabled`, `<type>_enabled`, `<package>_enabled` "
    "and a single default-true `*_enabled` boolean)"
)


async def _check_node_validation(c: _Checker) -> str:
    for info in c.spec.nodes:
        if (await c.validate(info.type_name, {})).ok:
            raise ExpectationFailed(
                f"{info.type_name}: empty node data validates (nothing is required)"
            )
    return f"{len(c.spec.nodes)} node model(s) reject empty data"


async def _check_spec_shape(c: _Checker) -> str:
    problems = [problem for info in c.spec.nodes for problem in spec_shape_problems(info.spec)]
    if problems:
        raise ExpectationFailed("; ".join(problems))
    return f"{len(c.spec.nodes)} spec(s) have the reference's keys"


async def _check_spec_lint(c: _Checker) -> str:
    errors: list[str] = []
    warnings: list[str] = []
    for info in c.spec.nodes:
        found, warned = lint_spec(info.spec)
        errors += found
        warnings += warned + [f"{info.type_name}: {note}" for note in info.notes]
    if errors:
        raise ExpectationFailed("; ".join(errors + warnings))
    if warnings:
        raise Warned("; ".join(warnings))
    return f"{len(c.spec.nodes)} spec(s) lint clean"


async def _check_examples(c: _Checker) -> str:
    count = 0
    for info in c.spec.nodes:
        for example in info.spec.get("examples") or []:
            outcome = await c.validate(info.type_name, example["data"])
            if not outcome.ok:
                detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in outcome.errors)
                raise ExpectationFailed(
                    f"{info.type_name}: example {example['name']!r} does not validate: {detail}"
                )
            count += 1
    return f"{count} example(s) validate"


async def _check_masking(c: _Checker) -> str:
    secret_nodes = [info for info in c.spec.nodes if info.sensitive_fields]
    if not secret_nodes:
        return "skipped: no sensitive fields"
    try:
        from host._masking import MaskedSecretError, mask_definition, merge_secrets
    except ImportError:
        return "skipped: the host's masking is not importable in this environment"
    count = 0
    for info in secret_nodes:
        _check_marked(info)
        for index, example in enumerate(info.spec.get("examples") or []):
            node = {"id": f"n{index}", "type": info.type_name, "data": dict(example["data"])}
            count += _round_trip(info, node, mask_definition, merge_secrets, MaskedSecretError)
    if not count:
        raise ExpectationFailed("no example carries a secret value longer than 4 characters")
    return (
        f"{count} secret value(s) masked, restored, replaced and refused through the host's merge"
    )


def _check_marked(info: NodeTypeInfo) -> None:
    exported = {p["name"] for p in info.spec["properties"]}
    marked = {p["name"] for p in info.spec["properties"] if p.get("sensitive")}
    if marked != set(info.sensitive_fields) & exported:
        raise ExpectationFailed(
            f"{info.type_name}: sensitive properties are not marked in the spec"
        )


def _round_trip(
    info: NodeTypeInfo, node: dict[str, Any], mask: Any, merge: Any, refused: Any
) -> int:
    """Mask the stored node, merge the mask back, a new value, and a mask with nothing stored."""

    def sensitive(type_name: str) -> tuple[str, ...]:
        return tuple(info.sensitive_fields) if type_name == info.type_name else ()

    stored = {"nodes": [node]}
    count = 0
    for name in info.sensitive_fields:
        real = node["data"].get(name)
        if not isinstance(real, str) or len(real) <= 4:
            continue
        where = f"{info.type_name}.{name}"
        masked = mask(stored, sensitive)
        shown = masked["nodes"][0]["data"][name]
        if shown == real or shown[-4:] != real[-4:]:
            raise ExpectationFailed(f"{where}: the mask {shown!r} hides nothing or loses the tail")
        if merge(masked, stored, sensitive)["nodes"][0]["data"][name] != real:
            raise ExpectationFailed(f"{where}: merging the mask back does not restore the secret")
        changed = copy.deepcopy(masked)
        changed["nodes"][0]["data"][name] = "a-new-secret-7731"
        if merge(changed, stored, sensitive)["nodes"][0]["data"][name] != "a-new-secret-7731":
            raise ExpectationFailed(f"{where}: a new value is not taken as the new secret")
        try:
            merge(masked, {"nodes": []}, sensitive)
        except refused:
            count += 1
            continue
        raise ExpectationFailed(f"{where}: a masked value with nothing stored was accepted")
    return count


async def _check_runtime(c: _Checker) -> str:
    if not c.spec.capabilities.runtime:
        return "skipped: no runtime collector"
    if not await c.open_runtime("check", c.example_nodes()):
        raise ExpectationFailed("runtime.open with enabled example nodes opened no session")
    await c.client.notify(
        Method.RUNTIME_EVENTS, RuntimeEventsParams("check", synthetic_call_events())
    )
    snapshot = await c.finish_runtime("check")
    if not isinstance(snapshot, dict) or not snapshot:
        raise ExpectationFailed("the runtime snapshot after a synthetic call is empty")
    _strict_json(snapshot)
    c.snapshot = snapshot
    return f"snapshot keys {sorted(snapshot)}"


async def _check_completion(c: _Checker) -> str:
    if not c.spec.capabilities.completion:
        return "skipped: no completion handler"
    nodes = c.example_nodes()
    result = await c.complete(nodes)
    missing = [n["id"] for n in nodes if not mentions(result, n["id"])]
    if missing:
        raise ExpectationFailed(f"no result for enabled node(s) {missing}")
    return f"results for {len(nodes)} node(s)"


async def _check_disabled_skip(c: _Checker) -> str:
    toggles = c.toggles()
    if not any(toggles.values()):
        return f"skipped: {NO_TOGGLE}"
    nodes = [n for n in c.example_nodes(enabled=False) if toggles[n["type"]]]
    warnings = []
    if c.spec.capabilities.runtime and await c.open_runtime("check-disabled", nodes):
        await c.finish_runtime("check-disabled")
        warnings.append("runtime.open opened a session although every node is disabled")
    if c.spec.capabilities.completion:
        result = await c.complete(nodes)
        delivered = [n["id"] for n in nodes if mentions(result, n["id"])]
        if delivered:
            raise ExpectationFailed(f"disabled node(s) {delivered} were not skipped")
    if warnings:
        raise Warned("; ".join(warnings))
    used = sorted({str(t) for t in toggles.values() if t})
    return f"nodes switched off with {used} are skipped"


CHECKS: tuple[tuple[str, Check], ...] = (
    ("node model validation", _check_node_validation),
    ("spec shape", _check_spec_shape),
    ("spec lint", _check_spec_lint),
    ("examples validate", _check_examples),
    ("secret masking round trip", _check_masking),
    ("runtime snapshot", _check_runtime),
    ("completion happy path", _check_completion),
    ("disabled-node skip", _check_disabled_skip),
)
