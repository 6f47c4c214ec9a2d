"""Authoring: the spec derivation against a hand-written golden file, and author mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

import sdk
from sdk import (
    AuthoringError,
    BaseNodeData,
    IntegrationNodeRegistration,
    IntegrationPackageSpec,
    IntegrationRuntimeSession,
    NodeCategory,
    NodeExample,
    PackageRegistry,
    build_spec,
    node_spec,
    spec_field,
)

from .golden_model import GoldenNode

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "golden_node.json"


def decorate(cls: type[Any], **overrides: Any) -> type[Any]:
    options: dict[str, Any] = {
        "name": "n",
        "display_name": "N",
        "description": "A node.",
        "category": NodeCategory.integration,
        "icon": "Box",
    }
    return node_spec(**{**options, **overrides})(cls)  # type: ignore[no-any-return]


def test_the_golden_node_serialises_to_the_hand_written_wire_shape() -> None:
    registration = IntegrationNodeRegistration(
        "golden_node", GoldenNode, build_spec(GoldenNode), sensitive_fields=("api_key",)
    )
    assert registration.node_spec.wire() == json.loads(GOLDEN.read_text())


def test_the_public_names_are_exactly_all() -> None:
    public = {name for name in dir(sdk) if not name.startswith("_")} - {"protocol", "annotations"}
    modules = {name for name in public if type(getattr(sdk, name)).__name__ == "module"}
    assert set(sdk.__all__) == public - modules


def test_a_node_spec_name_differing_from_the_type_name_is_refused() -> None:
    cls = decorate(type("Mismatch", (BaseNodeData,), {}), name="one")
    with pytest.raises(AuthoringError, match="Mismatch") as caught:
        IntegrationNodeRegistration("two", cls, build_spec(cls))
    assert "same node type string" in str(caught.value)


def test_duplicate_node_types_in_a_package_and_across_packages_are_refused() -> None:
    cls = decorate(type("Dup", (BaseNodeData,), {}), name="dup")
    node = IntegrationNodeRegistration("dup", cls, build_spec(cls))
    with pytest.raises(AuthoringError, match="registered twice"):
        IntegrationPackageSpec(name="p", nodes=(node, node))
    registry = PackageRegistry()
    registry.register(IntegrationPackageSpec(name="p1", nodes=(node,)))
    with pytest.raises(AuthoringError, match="already registered by package 'p1'"):
        registry.register(IntegrationPackageSpec(name="p2", nodes=(node,)))


def test_unknown_overrides_and_bad_examples_build_as_in_the_reference() -> None:
    """The reference ignores these at import; `plugins check` reports them (tests/compat)."""
    cls = decorate(
        type("Overridden", (BaseNodeData,), {}),
        field_overrides={"nope": {"required": True}, "name": {"colour": "red"}},
        examples=[NodeExample(name="e", data={})],
    )
    spec = build_spec(cls).wire()
    assert [p["name"] for p in spec["properties"]] == ["name"]


def test_spec_only_hints_are_shown_and_not_enforced() -> None:
    class Hinted(BaseNodeData):
        count: int = spec_field(1, min_length=1, description="A count with a stray hint.")
        code: str = spec_field("", max_length=2, pattern="^[a-z]+$", description="A code.")

    spec = build_spec(decorate(Hinted)).wire()
    props = {p["name"]: p for p in spec["properties"]}
    assert (props["name"]["min_length"], props["count"]["min_length"]) == (1, 1)
    assert (props["code"]["max_length"], props["code"]["pattern"]) == (2, "^[a-z]+$")
    data = Hinted.model_validate({"name": "", "count": 7, "code": "NOT-LOWER"})
    assert (data.name, data.count, data.code) == ("", 7, "NOT-LOWER")


def test_a_node_without_constraints_serialises_graph_constraints_as_null() -> None:
    spec = build_spec(decorate(type("Free", (BaseNodeData,), {}))).wire()
    assert spec["graph_constraints"] is None
    assert list(spec) == [
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
    ]


def test_internal_flags_validate_to_false_and_stay_out_of_the_spec() -> None:
    data = BaseNodeData.model_validate({"name": "x", "unknown": 1})
    assert (data.is_start, data.is_end) == (False, False)
    assert "unknown" not in data.model_dump()


def test_a_sensitive_field_that_is_not_a_field_is_refused_naming_the_class() -> None:
    cls = decorate(type("Secretive", (BaseNodeData,), {}))
    with pytest.raises(AuthoringError, match="Secretive") as caught:
        IntegrationNodeRegistration("n", cls, build_spec(cls), sensitive_fields=("token",))
    assert "'token'" in str(caught.value)


def test_a_field_without_a_description_is_refused_naming_the_class() -> None:
    class NoWords(BaseNodeData):
        count: int = spec_field(1)

    with pytest.raises(AuthoringError, match=r"NoWords\.count` is missing a description"):
        build_spec(decorate(NoWords))


def test_a_list_without_ui_type_and_an_unknown_kind_of_event_are_refused() -> None:
    class Listy(BaseNodeData):
        items: list[str] = spec_field(default_factory=list, description="Items.")

    with pytest.raises(AuthoringError, match="Listy"):
        build_spec(decorate(Listy))
    with pytest.raises(AuthoringError, match="Listener"):
        type(
            "Listener", (IntegrationRuntimeSession,), {"subscriptions": frozenset({"no.such.kind"})}
        )


def test_literal_options_and_the_sensitive_marker() -> None:
    class Choice(BaseNodeData):
        tone: Literal["warm", "dry_wit", None] = spec_field("warm", description="Tone.")

    spec = build_spec(decorate(Choice)).wire()
    tone = next(p for p in spec["properties"] if p["name"] == "tone")
    assert tone["type"] == "options"
    assert [o["label"] for o in tone["options"]] == ["Warm", "Dry Wit"]


def test_importing_sdk_loads_neither_host_fastapi_nor_pipecat() -> None:
    heavy = "{'host', 'fastapi', 'pipecat', 'starlette'}"
    code = f"import sdk, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
