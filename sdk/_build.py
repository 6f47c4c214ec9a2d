"""Authoring layer: `build_spec`, the derivation of a `NodeSpec` from a decorated node model.

Contract (the reference algorithm, `contract-reference.md`): fields in declaration order, base
fields first; each field's spec metadata overlaid by `field_overrides[field]` (unknown keys and
unknown fields are ignored here, reported by `plugins check`); `spec_exclude` drops it. Type from
`ui_type`, else from the annotation (`Optional` unwrapped; `list[Model]` -> fixed collection whose
rows recurse; Enum/Literal -> options; exact str/int/float/bool; dict/Any -> json). Options from
the metadata, else from the Enum/Literal (also inside `list[...]` for multi_options), labels title
cased. Bounds from the metadata, then pydantic's `ge`/`gt` and `le`/`lt`; same for lengths and
pattern. Description required; display name humanised in title case; default from `spec_default`,
else the field default, else null; `property_order` first. Examples are not validated here.
Mistakes that make a spec impossible raise `AuthoringError` at import.
"""

from __future__ import annotations

import enum
import inspect
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, PydanticSchemaGenerationError, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ._errors import AuthoringError, owner_of
from ._nodes import (
    NODE_SPEC_ATTRIBUTE,
    SPEC_ONLY_KEYS,
    NodeSpecMetadata,
    field_meta,
    spec_field,
)
from ._spec import NodeSpec, PropertyOption, PropertySpec, PropertyType

_CHOICE_TYPES = (PropertyType.options, PropertyType.multi_options)
BASE_FIELDS = frozenset({"name", "is_start", "is_end"})


def build_spec(model: type[BaseModel]) -> NodeSpec:
    """Derive the node's spec from its model and `@node_spec` metadata."""
    meta = getattr(model, NODE_SPEC_ATTRIBUTE, None)
    owner = owner_of(model)
    if not isinstance(meta, NodeSpecMetadata):
        raise AuthoringError(
            "is not decorated with @node_spec", fix="add @node_spec(name=...) above it", owner=owner
        )
    properties = _ordered(properties_of(model, owner), meta.property_order, meta.name, owner)
    return NodeSpec(
        name=meta.name,
        display_name=meta.display_name,
        description=meta.description,
        llm_hint=meta.llm_hint,
        docs_url=meta.docs_url,
        category=meta.category,
        icon=meta.icon,
        version=meta.version,
        properties=properties,
        examples=list(meta.examples),
        graph_constraints=meta.graph_constraints,
    )


_SPEC_FIELD_KEYWORDS = frozenset(inspect.signature(Field).parameters) | frozenset(
    inspect.signature(spec_field).parameters
) - {"field_args", "field_kwargs"}


def merged_meta(model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
    """A field's spec metadata with the model's `field_overrides[name]` laid over it."""
    meta = getattr(model, NODE_SPEC_ATTRIBUTE, None)
    overrides = meta.field_overrides.get(name) if isinstance(meta, NodeSpecMetadata) else None
    return {**field_meta(info), **(overrides or {})}


def properties_of(model: type[BaseModel], owner: str) -> list[PropertySpec]:
    """The spec properties of a model's fields, in declaration order (excluded ones dropped)."""
    properties = []
    for name, info in model.model_fields.items():
        meta = merged_meta(model, name, info)
        if not meta.get("spec_exclude"):
            properties.append(_property(model, name, info, meta, owner))
    return properties


def _property(
    model: type[BaseModel], name: str, info: FieldInfo, meta: dict[str, Any], owner: str
) -> PropertySpec:
    where = f"{owner}, field {name!r}"
    _check_field(model, name, info, meta, owner)
    kind = _property_type(info.annotation, meta, where)
    description = meta.get("description") or info.description
    if not description:
        raise AuthoringError(
            f"`{model.__name__}.{name}` is missing a description",
            fix=f"pass description=... to spec_field for {name!r}",
            owner=owner,
        )
    low, high, shortest, longest, pattern = _constraints(info, meta)
    return PropertySpec(
        name=name,
        type=kind,
        display_name=meta.get("display_name") or humanise_identifier(name),
        description=description,
        llm_hint=meta.get("llm_hint"),
        default=_default(info, meta),
        required=bool(meta["required"]) if meta.get("required") is not None else info.is_required(),
        placeholder=meta.get("placeholder"),
        display_options=meta.get("display_options"),
        options=_options(info.annotation, meta, kind),
        properties=_rows(info.annotation, kind, where, owner),
        min_value=low,
        max_value=high,
        min_length=shortest,
        max_length=longest,
        pattern=pattern,
        editor=meta.get("editor"),
        renderer_options=meta.get("renderer_options"),
    )


def _check_field(
    model: type[BaseModel], name: str, info: FieldInfo, meta: dict[str, Any], owner: str
) -> None:
    """What pydantic lets through: an unknown spec_field keyword, a default of the wrong type."""
    unknown = meta.get("unknown_arguments")
    if unknown:
        import difflib  # only for this mistake: not on every start

        known = sorted(_SPEC_FIELD_KEYWORDS)
        hints = [
            f"{word} -> {close[0]}"
            for word in unknown
            if (close := difflib.get_close_matches(word, known, n=1))
        ]
        raise AuthoringError(
            f"`{model.__name__}.{name}`: spec_field got unknown argument(s) {', '.join(unknown)}",
            fix=("did you mean " + "; ".join(hints)) if hints else "remove them",
            owner=owner,
        )
    default = info.default
    if default is PydanticUndefined or default is None or info.annotation is None:
        return
    try:
        TypeAdapter(info.annotation).validate_python(default)
    except (ValidationError, PydanticSchemaGenerationError) as exc:
        if isinstance(exc, PydanticSchemaGenerationError):
            return  # a type pydantic cannot check on its own: the model's validators decide
        raise AuthoringError(
            f"`{model.__name__}.{name}`: default {default!r} is not a valid "
            f"{getattr(info.annotation, '__name__', info.annotation)}",
            fix=f"give {name!r} a default of its own type",
            owner=owner,
        ) from None


def strip_optional(annotation: Any) -> Any:
    """`X` for `X | None` / `Optional[X]`; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        members = [arg for arg in args if arg is not type(None)]
        if len(members) == 1 and len(members) != len(args):
            return members[0]
    return annotation


def _is_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _is_row_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _property_type(annotation: Any, meta: dict[str, Any], where: str) -> PropertyType:
    if meta.get("ui_type"):
        return PropertyType(meta["ui_type"])
    inner = strip_optional(annotation)
    origin, args = get_origin(inner), get_args(inner)
    if origin is list:
        if _is_row_model(strip_optional(args[0]) if args else Any):
            return PropertyType.fixed_collection
        raise AuthoringError(
            f"{where}: a list field needs ui_type unless its rows are a model",
            fix="pass ui_type=PropertyType.multi_options (or json, tool_refs...) to spec_field",
        )
    if _is_enum(inner) or origin is Literal:
        return PropertyType.options
    exact = {str: PropertyType.string, int: PropertyType.number, float: PropertyType.number}
    if inner in exact:
        return exact[inner]
    if inner is bool:
        return PropertyType.boolean
    if inner is dict or inner is Any or origin is dict:
        return PropertyType.json
    raise AuthoringError(
        f"{where}: type {annotation!r} cannot be exported to a spec",
        fix="use str, int, float, bool, dict, an Enum/Literal or list[Model], or pass ui_type",
    )


def _rows(annotation: Any, kind: PropertyType, where: str, owner: str) -> list[PropertySpec] | None:
    if kind != PropertyType.fixed_collection:
        return None
    args = get_args(strip_optional(annotation))
    row = strip_optional(args[0]) if args else None
    if not isinstance(row, type) or not issubclass(row, BaseModel):
        raise AuthoringError(
            f"{where}: a fixed_collection field must be annotated list[<row model>]",
            fix="annotate the field as list[RowModel] where RowModel is a pydantic model",
        )
    return properties_of(row, owner)


def _options(annotation: Any, meta: dict[str, Any], kind: PropertyType) -> Any:
    if kind not in _CHOICE_TYPES or meta.get("options"):
        return meta.get("options")
    inner = strip_optional(annotation)
    if kind == PropertyType.multi_options:
        args = get_args(inner)
        if not args:
            return None  # nothing to derive from; `plugins check` reports options without options
        inner = strip_optional(args[0])
    if _is_enum(inner):
        return [PropertyOption(value=m.value, label=humanise_option(m.value)) for m in inner]
    if get_origin(inner) is Literal:
        values = [value for value in get_args(inner) if value is not None]
        return [PropertyOption(value=value, label=humanise_option(value)) for value in values]
    return None


def humanise_identifier(name: str) -> str:
    return name.replace("_", " ").strip().title()


def humanise_option(value: Any) -> str:
    if isinstance(value, str):
        return value.replace("_", " ").replace("-", " ").strip().title()
    return str(value)


def _constraints(info: FieldInfo, meta: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """Spec bounds: the metadata's hints first, then pydantic's (exclusivity is not kept)."""
    low, high = meta.get("min_value"), meta.get("max_value")
    shortest, longest, pattern = meta.get("min_length"), meta.get("max_length"), meta.get("pattern")
    for item in info.metadata:
        if low is None:
            low = _attr(item, "ge") if _attr(item, "ge") is not None else _attr(item, "gt")
        if high is None:
            high = _attr(item, "le") if _attr(item, "le") is not None else _attr(item, "lt")
        shortest = shortest if shortest is not None else _attr(item, "min_length")
        longest = longest if longest is not None else _attr(item, "max_length")
        pattern = pattern if pattern is not None else _attr(item, "pattern")
    return low, high, shortest, longest, pattern


def _attr(item: Any, name: str) -> Any:
    return getattr(item, name, None)


def _default(info: FieldInfo, meta: dict[str, Any]) -> Any:
    if "spec_default" in meta:
        return meta["spec_default"]
    if info.default is not PydanticUndefined:
        return info.default
    return None  # required, or a default_factory field: the spec shows null


def _ordered(
    properties: list[PropertySpec], order: tuple[str, ...], spec_name: str, owner: str
) -> list[PropertySpec]:
    if not order:
        return properties
    names = {prop.name for prop in properties}
    missing = [name for name in order if name not in names]
    if missing:
        raise AuthoringError(
            f"{spec_name}: property_order references unknown properties: {missing}",
            fix="list only fields of the model that are not spec_exclude'd",
            owner=owner,
        )
    rank = {name: index for index, name in enumerate(order)}
    ranked = sorted(
        enumerate(properties), key=lambda item: (rank.get(item[1].name, len(rank)), item[0])
    )
    return [prop for _, prop in ranked]


def authoring_notes(model: type[BaseModel]) -> list[str]:
    """What the reference silently accepts and plugbox reports as warnings (`plugins check`)."""
    meta = getattr(model, NODE_SPEC_ATTRIBUTE, None)
    if not isinstance(meta, NodeSpecMetadata):
        return []
    notes = []
    for name, override in meta.field_overrides.items():
        if name not in model.model_fields:
            notes.append(f"field_overrides names {name!r}, which is not a field: ignored")
            continue
        for key in sorted(set(override) - SPEC_ONLY_KEYS):
            notes.append(f"field_overrides[{name!r}] has the unknown key {key!r}: ignored")
    for name, info in model.model_fields.items():
        if name in BASE_FIELDS:
            continue  # the base's own `name` hint is the reference's, not the author's
        hints = [
            key
            for key in ("min_length", "max_length", "pattern")
            if key in field_meta(info) and field_meta(info)[key] is not None
        ]
        if hints and strip_optional(info.annotation) is not str:
            notes.append(f"{name}: {hints} on a non-string field are shown in the spec only")
        elif hints:
            notes.append(f"{name}: {hints} are spec-only hints, not enforced on validation")
    return notes
