"""The reference's spec lint, result search, toggle discovery and display rules, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from sdk import DisplayOptions, evaluate_display_options
from sdk.protocol import NodeTypeInfo
from sdk.testing._checker import find_toggle, mentions
from sdk.testing._lint import NODE_KEYS, PROPERTY_KEYS, lint_spec, spec_shape_problems


def prop(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(PROPERTY_KEYS)
    base.update(name=name, type=kind, display_name=name.title(), description=f"The {name}.")
    base["required"] = False
    base.update(extra)
    return base


def spec(*properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(NODE_KEYS)
    base.update(
        name="n",
        display_name="N",
        description="A node that files a ticket after every call.",
        category="integration",
        icon="Box",
        version="1.0.0",
        properties=list(properties),
        examples=[{"name": "e", "description": None, "data": {"name": "x"}}],
    )
    base.update(extra)
    return base


@pytest.mark.parametrize(
    ("node", "error"),
    [
        (spec(description="TODO"), "empty or a placeholder"),
        (spec(examples=[]), "no example"),
        (spec(prop("mode", "options")), "needs at least one option"),
        (spec(prop("rows", "fixed_collection")), "needs row properties"),
        (spec(prop("x", description="n/a")), "n.x: the description is empty or a placeholder"),
        (
            spec(prop("x", display_options={"show": {"ghost": [True]}, "hide": None})),
            "display_options names unknown ['ghost']",
        ),
        (
            spec(
                prop(
                    "rows",
                    "fixed_collection",
                    properties=[prop("a", display_options={"hide": {"b": [1]}})],
                ),
                prop("b"),
            ),
            "n.rows.a: display_options names unknown ['b']",  # siblings are scoped to the row
        ),
    ],
)
def test_each_reference_lint_rule_is_an_error(node: dict[str, Any], error: str) -> None:
    errors, _ = lint_spec(node)
    assert any(error in found for found in errors), errors


def test_a_short_node_description_is_a_warning_and_a_clean_spec_has_neither() -> None:
    assert lint_spec(spec(description="Files tickets.")) == (
        [],
        ["n: the node description has 14 characters; the reference asks for at least 20"],
    )
    assert lint_spec(spec(prop("a", display_options={"show": {"b": [1]}}), prop("b"))) == ([], [])


def test_the_shape_check_names_extra_and_missing_keys_and_allows_only_sensitive_true() -> None:
    assert spec_shape_problems(spec(prop("a"), prop("k", sensitive=True))) == []
    broken = spec(prop("a", extra=None))
    del broken["docs_url"]
    assert len(spec_shape_problems(broken)) == 2
    assert spec_shape_problems(spec(prop("k", sensitive=False))) == [
        "n.k: `sensitive` is present but not true"
    ]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"n1": {}}, True),
        ({"noveum_n1": {"status": "delivered"}}, True),
        ({"batch": [{"deliveries": {"node_id": "n1"}}]}, True),
        ({"an1": {}}, False),
        ({"noveum_n12": {}}, False),
        ({"x": {"node": "n1"}}, False),
    ],
)
def test_a_node_is_answered_wherever_its_id_nests(result: dict[str, Any], expected: bool) -> None:
    assert mentions(result, "n1") is expected


@pytest.mark.parametrize(
    ("names", "toggle"),
    [
        (["enabled", "desk_enabled"], "enabled"),
        (["desk_enabled", "cost_calculation_enabled"], "desk_enabled"),
        (["pkg_enabled"], "pkg_enabled"),
        (["feature_enabled"], "feature_enabled"),
        (["feature_enabled", "audio_enabled"], None),
        (["active"], None),
    ],
)
def test_the_enable_toggle_is_found_from_the_spec(names: list[str], toggle: str | None) -> None:
    info = NodeTypeInfo("desk", spec(*(prop(n, "boolean", default=True) for n in names)))
    assert find_toggle(info, "pkg") == toggle


@pytest.mark.parametrize(
    ("rules", "values", "visible"),
    [
        (None, {}, True),
        ({"show": {"a": [True]}}, {"a": True}, True),
        ({"show": {"a": [True], "b": ["x"]}}, {"a": True, "b": "y"}, False),  # show: AND
        ({"hide": {"a": [True], "b": ["x"]}}, {"a": False, "b": "x"}, False),  # hide: OR
        ({"hide": {"a": [True]}}, {}, True),
        (DisplayOptions(show={"mode": ["slow"]}), {"mode": "slow"}, True),
    ],
)
def test_display_options_follow_the_reference_evaluator(
    rules: Any, values: dict[str, Any], visible: bool
) -> None:
    assert evaluate_display_options(rules, values) is visible
