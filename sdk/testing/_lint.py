"""Testing helpers, spec lint: the reference's spec-quality rules, run on served specs.

Contract: `lint_spec(spec)` returns `(errors, warnings)` for one node spec as served (the wire
dict). Errors are what breaks an editor or an LLM author in the reference's own lint: a placeholder
description, no example, `options`/`multi_options` without options, a `fixed_collection` without
row properties, `display_options` naming a field that is not a sibling. Warnings: a node
description shorter than `MIN_NODE_DESCRIPTION` characters. `spec_shape_problems(spec)` lists keys
that differ from the pinned reference shape (plugbox's documented `sensitive` key allowed).
Examples are validated by the checks (they need the plugin's models).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MIN_NODE_DESCRIPTION = 20  # the reference's floor for a node description useful to an LLM
PLACEHOLDER = re.compile(
    r"^\s*(todo|fixme|tbd|xxx|\.\.\.|placeholder|description|n/?a|\?)\s*\.?\s*$", re.IGNORECASE
)
NODE_KEYS = (
    "name",
    "display_name",
    "description",
    "llm_hint",
    "docs_url",
    "category",
    "icon",
    "version",
    "properties",
    "examples",
    "graph_constraints",
)
PROPERTY_KEYS = (
    "name",
    "type",
    "display_name",
    "description",
    "llm_hint",
    "default",
    "required",
    "placeholder",
    "display_options",
    "options",
    "properties",
    "min_value",
    "max_value",
    "min_length",
    "max_length",
    "pattern",
    "editor",
    "renderer_options",
)
CONSTRAINT_KEYS = (
    "min_incoming",
    "max_incoming",
    "min_outgoing",
    "max_outgoing",
    "min_instances",
    "max_instances",
)
PLUGBOX_PROPERTY_KEYS = frozenset({"sensitive"})  # documented additions, present only when true


def walk(properties: list[dict[str, Any]], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property and sub-property with its dotted path."""
    for prop in properties or []:
        here = f"{path}.{prop.get('name')}" if path else str(prop.get("name"))
        yield here, prop
        yield from walk(prop.get("properties") or [], here)


def spec_shape_problems(spec: dict[str, Any]) -> list[str]:
    name = spec.get("name")
    problems = []
    if list(spec) != list(NODE_KEYS):
        problems.append(f"{name}: node keys {list(spec)} are not the reference's {list(NODE_KEYS)}")
    constraints = spec.get("graph_constraints")
    if constraints is not None and set(constraints) != set(CONSTRAINT_KEYS):
        problems.append(f"{name}: graph_constraints keys {sorted(constraints)} differ")
    for path, prop in walk(spec.get("properties") or []):
        keys = [key for key in prop if key not in PLUGBOX_PROPERTY_KEYS]
        if keys != list(PROPERTY_KEYS):
            problems.append(f"{name}.{path}: property keys {keys} are not the reference's")
        if "sensitive" in prop and prop["sensitive"] is not True:
            problems.append(f"{name}.{path}: `sensitive` is present but not true")
    return problems


def lint_spec(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The reference's lint rules: (errors, warnings)."""
    name = spec.get("name")
    errors: list[str] = []
    warnings: list[str] = []
    description = str(spec.get("description") or "")
    if not description.strip() or PLACEHOLDER.match(description):
        errors.append(f"{name}: the node description is empty or a placeholder")
    elif len(description) < MIN_NODE_DESCRIPTION:
        warnings.append(
            f"{name}: the node description has {len(description)} characters; "
            f"the reference asks for at least {MIN_NODE_DESCRIPTION}"
        )
    if not spec.get("examples"):
        errors.append(f"{name}: the spec has no example")
    for path, prop in walk(spec.get("properties") or []):
        errors += _property_errors(f"{name}.{path}", prop)
    errors += _display_option_errors(str(name), spec.get("properties") or [])
    return errors, warnings


def _property_errors(where: str, prop: dict[str, Any]) -> list[str]:
    errors = []
    text = str(prop.get("description") or "")
    if not text.strip() or PLACEHOLDER.match(text):
        errors.append(f"{where}: the description is empty or a placeholder")
    if prop.get("type") in ("options", "multi_options") and not prop.get("options"):
        errors.append(f"{where}: type {prop.get('type')} needs at least one option")
    if prop.get("type") == "fixed_collection" and not prop.get("properties"):
        errors.append(f"{where}: a fixed_collection needs row properties")
    return errors


def _display_option_errors(where: str, scope: list[dict[str, Any]]) -> list[str]:
    """display_options may name only siblings; nested rows are checked in their own scope."""
    errors = []
    names = {prop.get("name") for prop in scope}
    for prop in scope:
        rules = prop.get("display_options") or {}
        referenced = set(rules.get("show") or {}) | set(rules.get("hide") or {})
        unknown = sorted(referenced - names)
        if unknown:
            errors.append(f"{where}.{prop.get('name')}: display_options names unknown {unknown}")
        if prop.get("properties"):
            errors += _display_option_errors(f"{where}.{prop.get('name')}", prop["properties"])
    return errors
