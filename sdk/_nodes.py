"""Authoring layer: node models (`BaseNodeData`), `spec_field` and the `@node_spec` decorator.

Contract: the pydantic model is the source of truth. `spec_field(...)` is a pydantic `Field` that
also carries spec-only metadata; `@node_spec(...)` only attaches node metadata to the class and
returns it unchanged. `build_spec` (in `_build.py`) reads both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from ._spec import (
    SPEC_VERSION,
    DisplayOptions,
    GraphConstraints,
    NodeCategory,
    NodeExample,
    PropertyOption,
    PropertyType,
)

_UNSET: Any = object()
SPEC_ONLY_KEYS = frozenset(
    {
        "ui_type",
        "display_name",
        "description",
        "llm_hint",
        "required",
        "spec_default",
        "placeholder",
        "display_options",
        "options",
        "editor",
        "renderer_options",
        "spec_exclude",
        "min_value",
        "max_value",
        "min_length",
        "max_length",
        "pattern",
    }
)


@dataclass(frozen=True)
class FieldSpecMeta:
    """Spec-only metadata of one field, kept in the pydantic FieldInfo's metadata list."""

    values: Mapping[str, Any] = field(default_factory=dict)


def spec_field(
    default: Any = PydanticUndefined,
    *,
    ui_type: PropertyType | None = None,
    display_name: str | None = None,
    llm_hint: str | None = None,
    required: bool | None = None,
    spec_default: Any = _UNSET,
    placeholder: str | None = None,
    display_options: DisplayOptions | None = None,
    options: Sequence[PropertyOption] | None = None,
    editor: str | None = None,
    renderer_options: Mapping[str, Any] | None = None,
    spec_exclude: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
    **field_kwargs: Any,
) -> Any:
    """A pydantic `Field` (constraints, description, default_factory...) plus spec metadata."""
    spec: dict[str, Any] = {
        "ui_type": ui_type,
        "display_name": display_name,
        "llm_hint": llm_hint,
        "required": required,
        "placeholder": placeholder,
        "display_options": display_options,
        "options": list(options) if options is not None else None,
        "editor": editor,
        "renderer_options": dict(renderer_options) if renderer_options else None,
        "spec_exclude": spec_exclude,
        "min_value": min_value,
        "max_value": max_value,
    }
    values = {k: v for k, v in spec.items() if v is not None and v is not False}
    if spec_default is not _UNSET:
        values["spec_default"] = spec_default  # stored only when passed, even if None
    info = Field(default, **field_kwargs)
    info.metadata.append(FieldSpecMeta(values))
    return info


def field_meta(info: Any) -> dict[str, Any]:
    """The spec metadata `spec_field` attached to a FieldInfo (empty for a plain Field)."""
    for item in getattr(info, "metadata", ()):
        if isinstance(item, FieldSpecMeta):
            return dict(item.values)
    return {}


@dataclass(frozen=True)
class NodeSpecMeta:
    """What `@node_spec` attached to a node model."""

    name: str
    display_name: str
    description: str
    category: NodeCategory
    icon: str
    llm_hint: str | None = None
    docs_url: str | None = None
    version: str = SPEC_VERSION
    examples: tuple[NodeExample, ...] = ()
    graph_constraints: GraphConstraints | None = None
    property_order: tuple[str, ...] = ()
    field_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


NODE_SPEC_ATTRIBUTE = "__node_spec_meta__"
ModelT = TypeVar("ModelT", bound=type[BaseModel])


def node_spec(
    *,
    name: str,
    display_name: str,
    description: str,
    category: NodeCategory,
    icon: str,
    llm_hint: str | None = None,
    docs_url: str | None = None,
    version: str = SPEC_VERSION,
    examples: Sequence[NodeExample] = (),
    graph_constraints: GraphConstraints | None = None,
    property_order: Sequence[str] = (),
    field_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """Attach node metadata to a model class; returns the class unchanged."""
    meta = NodeSpecMeta(
        name=name,
        display_name=display_name,
        description=description,
        category=NodeCategory(category),
        icon=icon,
        llm_hint=llm_hint,
        docs_url=docs_url,
        version=version,
        examples=tuple(examples),
        graph_constraints=graph_constraints,
        property_order=tuple(property_order),
        field_overrides=dict(field_overrides or {}),
    )

    def attach(cls: ModelT) -> ModelT:
        setattr(cls, NODE_SPEC_ATTRIBUTE, meta)
        return cls

    return attach


class BaseNodeData(BaseModel):
    """Base of every node model. Unknown keys in node data are ignored, as in the reference."""

    model_config = ConfigDict(extra="ignore")

    name: str = spec_field(..., min_length=1, description="A name for this node.")
    is_start: bool | None = spec_field(
        None, spec_exclude=True, description="Marks the workflow's start node."
    )
    is_end: bool | None = spec_field(
        None, spec_exclude=True, description="Marks a workflow end node."
    )
