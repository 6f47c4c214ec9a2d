"""Authoring layer: `build_spec`, the derivation of a `NodeSpec` from a decorated node model.

Contract (the reference algorithm, `contract-reference.md`): fields in declaration order, base
fields first; each field's spec metadata overlaid by `field_overrides`; `spec_exclude` drops it;
type from `ui_type`, else from the annotation (Optional unwrapped, `list[Model]` -> fixed
collection, Enum/Literal -> options, str/int/float/bool/dict/Any); bounds from the metadata, then
pydantic's `ge`/`gt` and `le`/`lt`; description required; default from `spec_default`, else the
field default; `property_order` first. Every author mistake raises `AuthoringError` at import.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from ._errors import AuthoringError, owner_of
from ._nodes import NODE_SPEC_ATTRIBUTE, SPEC_ONLY_KEYS, NodeSpecMeta, field_meta
from ._spec import GraphConstraints, NodeSpec, PropertyOption, PropertySpec, PropertyType

_SIMPLE_TYPES: tuple[tuple[type, PropertyType], ...] = (
    (bool, PropertyType.boolean),  # before int: bool is an int subclass
    (str, PropertyType.string),
    (int, PropertyType.number),
    (float, PropertyType.number),
    (dict, PropertyType.json),
)


def build_spec(model: type[BaseModel]) -> NodeSpec:
    """Derive the node's spec from its model and `@node_spec` metadata."""
    meta = model.__dict__.get(NODE_SPEC_ATTRIBUTE)
    owner = owner_of(model)
    if not isinstance(meta, NodeSpecMeta):
        raise AuthoringError(
            "is not decorated with @node_spec", fix="add @node_spec(name=...) above it", owner=owner
        )
    _check_overrides(model, meta, owner)
    properties = properties_of(model, meta.field_overrides, owner)
    spec = _assemble(meta, _ordered(properties, meta.property_order, owner), owner)
    _check_examples(model, meta, owner)
    return spec


def properties_of(
    model: type[BaseModel], overrides: typing.Mapping[str, typing.Mapping[str, Any]], owner: str
) -> list[PropertySpec]:
    """The spec properties of a model's fields, in declaration order (excluded ones dropped)."""
    properties = []
    for name, info in model.model_fields.items():
        merged = {**field_meta(info), **overrides.get(name, {})}
        if merged.get("spec_exclude"):
            continue
        properties.append(_property(model, name, info, merged, owner))
    return properties


def _property(
    model: type[BaseModel], name: str, info: FieldInfo, meta: dict[str, Any], owner: str
) -> PropertySpec:
    annotation = _unwrap_optional(info.annotation)
    kind = meta.get("ui_type") or _infer_type(annotation, f"{owner}, field {name!r}")
    description = meta.get("description") or info.description
    if not description:
        raise AuthoringError(
            f"`{model.__name__}.{name}` is missing a description",
            fix=f"pass description=... to spec_field for {name!r}",
            owner=owner,
        )
    low, high = _bounds(info, meta)
    return PropertySpec(
        name=name,
        type=PropertyType(kind),
        display_name=meta.get("display_name") or name.replace("_", " ").capitalize(),
        description=description,
        default=_default(info, meta),
        required=meta["required"] if "required" in meta else info.is_required(),
        placeholder=meta.get("placeholder"),
        display_options=meta.get("display_options"),
        options=meta.get("options") or _options(annotation),
        properties=_rows(annotation, owner),
        min_value=low,
        max_value=high,
        min_length=_constraint(info, meta, "min_length", annotated_types.MinLen),
        max_length=_constraint(info, meta, "max_length", annotated_types.MaxLen),
        pattern=meta.get("pattern") or _pattern(info),
        editor=meta.get("editor"),
        extra=_extra(meta),
    )


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _infer_type(annotation: Any, where: str) -> PropertyType:
    origin = get_origin(annotation)
    if origin is list:
        if _row_model(annotation) is not None:
            return PropertyType.fixed_collection
        raise AuthoringError(
            f"{where}: a list field needs ui_type",
            fix="pass ui_type=PropertyType.multi_options (or json, tool_refs...) to spec_field",
        )
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return PropertyType.options
    if annotation is Any or origin is dict:
        return PropertyType.json
    for python_type, kind in _SIMPLE_TYPES:
        if isinstance(annotation, type) and issubclass(annotation, python_type):
            return kind
    raise AuthoringError(
        f"{where}: type {annotation!r} cannot be exported to a spec",
        fix="use str, int, float, bool, dict, an Enum/Literal or list[Model], or pass ui_type",
    )


def _row_model(annotation: Any) -> type[BaseModel] | None:
    args = get_args(annotation)
    row = args[0] if args else None
    return row if isinstance(row, type) and issubclass(row, BaseModel) else None


def _rows(annotation: Any, owner: str) -> list[PropertySpec] | None:
    row = _row_model(annotation) if get_origin(annotation) is list else None
    return properties_of(row, {}, owner) if row is not None else None


def _options(annotation: Any) -> list[PropertyOption] | None:
    if get_origin(annotation) is Literal:
        values = [value for value in get_args(annotation) if value is not None]
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
    else:
        return None
    return [PropertyOption(value=value, label=_humanise(str(value))) for value in values]


def _humanise(text: str) -> str:
    return text.replace("_", " ").replace("-", " ").title()


def _bounds(info: FieldInfo, meta: dict[str, Any]) -> tuple[float | None, float | None]:
    low = meta.get("min_value", _first(info, annotated_types.Ge, "ge"))
    if low is None:
        low = _first(info, annotated_types.Gt, "gt")
    high = meta.get("max_value", _first(info, annotated_types.Le, "le"))
    if high is None:
        high = _first(info, annotated_types.Lt, "lt")
    return low, high


def _first(info: FieldInfo, kind: type, attribute: str) -> Any:
    for item in info.metadata:
        if isinstance(item, kind):
            return getattr(item, attribute)
    return None


def _constraint(info: FieldInfo, meta: dict[str, Any], key: str, kind: type) -> int | None:
    value = meta.get(key)
    found = value if value is not None else _first(info, kind, key)
    return int(found) if found is not None else None


def _pattern(info: FieldInfo) -> str | None:
    for item in info.metadata:
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            return pattern
    return None


def _default(info: FieldInfo, meta: dict[str, Any]) -> Any:
    if "spec_default" in meta:
        return to_jsonable_python(meta["spec_default"])
    if info.default is PydanticUndefined:
        return None  # required, or a default_factory field: the spec shows null
    return to_jsonable_python(info.default)


def _extra(meta: dict[str, Any]) -> dict[str, Any] | None:
    extra = {key: meta[key] for key in ("llm_hint", "renderer_options") if meta.get(key)}
    return extra or None


def _check_overrides(model: type[BaseModel], meta: NodeSpecMeta, owner: str) -> None:
    for name, override in meta.field_overrides.items():
        if name not in model.model_fields:
            raise AuthoringError(
                f"field_overrides names {name!r}, which is not a field of {model.__name__}",
                fix=f"remove the override or add the field; fields: {sorted(model.model_fields)}",
                owner=owner,
            )
        unknown = sorted(set(override) - SPEC_ONLY_KEYS)
        if unknown:
            raise AuthoringError(
                f"field_overrides[{name!r}] has unknown keys {unknown}",
                fix=f"use only {sorted(SPEC_ONLY_KEYS)}",
                owner=owner,
            )


def _ordered(
    properties: list[PropertySpec], order: tuple[str, ...], owner: str
) -> list[PropertySpec]:
    by_name = {prop.name: prop for prop in properties}
    missing = [name for name in order if name not in by_name]
    if missing:
        raise AuthoringError(
            f"property_order names {missing}, which are not exported properties",
            fix="list only fields of the model that are not spec_exclude'd",
            owner=owner,
        )
    listed = [by_name[name] for name in order]
    return listed + [prop for prop in properties if prop.name not in order]


def _assemble(meta: NodeSpecMeta, properties: list[PropertySpec], owner: str) -> NodeSpec:
    if not meta.description.strip():
        raise AuthoringError(
            "@node_spec has an empty description", fix="describe what the node does", owner=owner
        )
    return NodeSpec(
        name=meta.name,
        display_name=meta.display_name,
        description=meta.description,
        category=meta.category,
        icon=meta.icon,
        version=meta.version,
        properties=properties,
        examples=list(meta.examples),
        graph_constraints=meta.graph_constraints or GraphConstraints(),
    )


def _check_examples(model: type[BaseModel], meta: NodeSpecMeta, owner: str) -> None:
    for example in meta.examples:
        try:
            model.model_validate(example.data)
        except ValidationError as exc:
            raise AuthoringError(
                f"example {example.name!r} does not validate against {model.__name__}: "
                f"{exc.errors(include_url=False)}",
                fix="correct the example's data",
                owner=owner,
            ) from None
