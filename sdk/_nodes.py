"""Authoring layer: node models (`BaseNodeData`), `spec_field` and the `@node_spec` decorator.

Contract (the reference's, `contract-reference.md`): the pydantic model is the source of truth.
`spec_field(...)` is a pydantic `Field` that also carries spec-only metadata; `ui_type`,
`display_name`, `llm_hint`, `required`, `spec_default` (kept only when passed, even if None),
`placeholder`, `display_options`, `options`, `editor`, `renderer_options`, `spec_exclude` and the
hints `min_value`, `max_value`, `min_length`, `max_length`, `pattern` are spec-only: the last five
are shown in the spec and NOT enforced (pydantic's own `gt`/`ge`/`lt`/`le` and a `Field`'s
constraints are). `@node_spec(...)` only attaches a `NodeSpecMetadata` to the class and returns it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ._spec import (
    SPEC_VERSION,
    DisplayOptions,
    GraphConstraints,
    NodeCategory,
    NodeExample,
    PropertyOption,
    PropertyRendererOptions,
    PropertyType,
)

_UNSET: Any = object()
SPEC_HINT_KEYS = ("min_value", "max_value", "min_length", "max_length", "pattern")
# Every key `spec_field` or a `field_overrides` entry means something for; others are ignored
# (as in the reference) and reported by `plugins check`.
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
        *SPEC_HINT_KEYS,
    }
)


@dataclass(frozen=True)
class FieldSpecMeta:
    """Spec-only metadata of one field, kept in the pydantic FieldInfo's metadata list."""

    values: Mapping[str, Any] = field(default_factory=dict)


_FIELD_PARAMETERS = frozenset(inspect.signature(Field).parameters)


def spec_field(
    *field_args: Any,
    ui_type: PropertyType | str | None = None,
    display_name: str | None = None,
    llm_hint: str | None = None,
    required: bool | None = None,
    spec_default: Any = _UNSET,
    placeholder: str | None = None,
    display_options: DisplayOptions | None = None,
    options: Sequence[PropertyOption] | None = None,
    editor: str | None = None,
    renderer_options: PropertyRendererOptions | Mapping[str, Any] | None = None,
    spec_exclude: bool = False,
    min_value: float | None = None,
    max_value: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    **field_kwargs: Any,
) -> Any:
    """A pydantic `Field` (default, description, gt/ge/lt/le, default_factory...) plus spec data."""
    values: dict[str, Any] = {
        "ui_type": ui_type.value if isinstance(ui_type, PropertyType) else ui_type,
        "display_name": display_name,
        "llm_hint": llm_hint,
        "required": required,
        "placeholder": placeholder,
        "display_options": display_options,
        "options": list(options) if options is not None else None,
        "editor": editor,
        "renderer_options": renderer_options,
        "spec_exclude": spec_exclude,
        "min_value": min_value,
        "max_value": max_value,
        "min_length": min_length,
        "max_length": max_length,
        "pattern": pattern,
    }
    if spec_default is not _UNSET:
        values["spec_default"] = spec_default  # stored only when passed, even if None
    # A misspelt keyword (`min_lenght=8`) would silently become JSON-schema "extra" and drop the
    # constraint: it is kept aside and reported, with the field's name, when the spec is built.
    unknown = sorted(key for key in field_kwargs if key not in _FIELD_PARAMETERS)
    if unknown:
        values["unknown_arguments"] = unknown
    info = Field(*field_args, **{k: v for k, v in field_kwargs.items() if k not in unknown})
    info.metadata.append(FieldSpecMeta(values))
    return info


def field_meta(info: Any) -> dict[str, Any]:
    """The spec metadata `spec_field` attached to a FieldInfo (empty for a plain Field)."""
    for item in getattr(info, "metadata", ()):
        if isinstance(item, FieldSpecMeta):
            return dict(item.values)
    return {}


@dataclass(frozen=True)
class NodeSpecMetadata:
    """What `@node_spec` attached to a node model (the reference's name and fields)."""

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
    field_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


NODE_SPEC_ATTRIBUTE = "__node_spec_metadata__"
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
    meta = NodeSpecMetadata(
        name=name,
        display_name=display_name,
        description=description,
        category=category,
        icon=icon,
        llm_hint=llm_hint,
        docs_url=docs_url,
        version=version,
        examples=tuple(examples),
        graph_constraints=graph_constraints,
        property_order=tuple(property_order),
        field_overrides={key: dict(value or {}) for key, value in (field_overrides or {}).items()},
    )

    def attach(cls: ModelT) -> ModelT:
        setattr(cls, NODE_SPEC_ATTRIBUTE, meta)
        return cls

    return attach


class BaseNodeData(BaseModel):
    """Base of every node model. Unknown keys in node data are ignored, as in the reference."""

    model_config = ConfigDict(extra="ignore")

    name: str = spec_field(
        ...,
        min_length=1,  # a spec hint, as in the reference: not enforced on validation
        ui_type=PropertyType.string,
        display_name="Name",
        description="The node's short name, shown on the canvas and in call logs.",
        required=True,
    )
    is_start: bool = spec_field(default=False, spec_exclude=True)
    is_end: bool = spec_field(default=False, spec_exclude=True)
