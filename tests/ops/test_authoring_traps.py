"""Authoring traps pydantic lets through are errors naming the field: a misspelt spec_field
keyword (the constraint would be dropped) and a default that fails its own type (it would be
served in the spec)."""

from __future__ import annotations

import pytest

from sdk import BaseNodeData, NodeCategory, build_spec, node_spec, spec_field
from sdk._errors import AuthoringError


def _node(**fields: object) -> type[BaseNodeData]:
    namespace = {"__annotations__": {k: v[0] for k, v in fields.items()}}
    namespace |= {k: v[1] for k, v in fields.items()}
    model = type("Trap", (BaseNodeData,), namespace)
    return node_spec(
        name="trap",
        display_name="Trap",
        description="A node with a mistake.",
        category=NodeCategory.integration,
        icon="Bug",
    )(model)


def test_a_misspelt_keyword_names_the_field_and_the_fix() -> None:
    model = _node(token=(str, spec_field(..., min_lenght=8, description="A token.")))
    with pytest.raises(
        AuthoringError, match=r"Trap\.token`: spec_field got unknown argument\(s\) min_lenght"
    ) as raised:
        build_spec(model)
    assert "did you mean min_lenght -> min_length" in str(raised.value)


def test_a_default_of_the_wrong_type_names_the_field() -> None:
    model = _node(retries=(int, spec_field("three", description="How many.")))
    with pytest.raises(AuthoringError, match=r"Trap\.retries`: default 'three' is not a valid int"):
        build_spec(model)


def test_right_defaults_and_known_keywords_pass() -> None:
    model = _node(
        retries=(int, spec_field(3, ge=0, description="How many.")),
        token=(str, spec_field("", min_length=0, description="A token.")),
    )
    names = [p.name for p in build_spec(model).properties]
    assert names[-2:] == ["retries", "token"]
