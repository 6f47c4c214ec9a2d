"""Authoring layer: the node spec wire models (`NodeSpec`, `PropertySpec` and their parts).

Contract: `NodeSpec.model_dump(mode="json")` is exactly the shape the pinned reference framework
serves for one node on `/api/v1/node-types`: every key present (nulls included), in the reference's
order, unknown keys forbidden, descriptions non-empty. The one plugbox addition is documented:
`sensitive: true` on a secret property (the key is absent on every other property).
`evaluate_display_options` is the reference's visibility rule. These models are pure data;
`build_spec` derives them from node models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

SPEC_VERSION = "1.0.0"


class PropertyType(StrEnum):
    """The property kinds an editor knows how to render."""

    string = "string"
    number = "number"
    boolean = "boolean"
    options = "options"
    multi_options = "multi_options"
    fixed_collection = "fixed_collection"
    json = "json"
    tool_refs = "tool_refs"
    document_refs = "document_refs"
    recording_ref = "recording_ref"
    credential_ref = "credential_ref"
    mention_textarea = "mention_textarea"
    url = "url"


class NodeCategory(StrEnum):
    call_node = "call_node"
    global_node = "global_node"
    trigger = "trigger"
    integration = "integration"


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DisplayOptions(_WireModel):
    """When a property is shown: `show` keys AND-combined, `hide` keys OR-combined."""

    show: dict[str, list[Any]] | None = None
    hide: dict[str, list[Any]] | None = None


def evaluate_display_options(
    rules: DisplayOptions | dict[str, Any] | None, values: dict[str, Any]
) -> bool:
    """Whether a property governed by `rules` is visible for the node data `values`."""
    if rules is None:
        return True
    if isinstance(rules, DisplayOptions):
        show, hide = rules.show, rules.hide
    else:
        show, hide = rules.get("show"), rules.get("hide")
    if show and any(values.get(name) not in allowed for name, allowed in show.items()):
        return False
    return not (hide and any(values.get(name) in hidden for name, hidden in hide.items()))


class PropertyOption(_WireModel):
    value: str | int | bool | float
    label: str
    description: str | None = None


class PropertyLayoutOptions(_WireModel):
    """Where a property sits in the editor's 12-column grid."""

    column_span: int | None = Field(default=None, ge=1, le=12)


class NumberInputOptions(_WireModel):
    """Number input hints; `fractional` lets the input take any decimal."""

    fractional: bool = False


class PropertyRendererOptions(_WireModel):
    """Typed renderer hints of a property."""

    layout: PropertyLayoutOptions | None = None
    number_input: NumberInputOptions | None = None


class PropertySpec(_WireModel):
    name: str
    type: PropertyType
    display_name: str
    description: str = Field(min_length=1)
    llm_hint: str | None = None
    default: Any = None
    required: bool = False
    placeholder: str | None = None
    display_options: DisplayOptions | None = None
    options: list[PropertyOption] | None = None
    properties: list[PropertySpec] | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    editor: str | None = None
    renderer_options: PropertyRendererOptions | None = None
    sensitive: bool = False  # plugbox's documented addition; serialised only when true

    @model_serializer(mode="wrap")
    def _drop_default_sensitive(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.sensitive:
            data.pop("sensitive", None)  # the reference shape has no such key
        return data


class NodeExample(_WireModel):
    name: str
    description: str | None = None
    data: dict[str, Any]


class GraphConstraints(_WireModel):
    """How a node may be connected and how often it may appear; None means unbounded."""

    min_incoming: int | None = None
    max_incoming: int | None = None
    min_outgoing: int | None = None
    max_outgoing: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None


class NodeSpec(_WireModel):
    name: str
    display_name: str
    description: str = Field(min_length=1)
    llm_hint: str | None = None
    docs_url: str | None = None
    category: NodeCategory
    icon: str
    version: str = SPEC_VERSION
    properties: list[PropertySpec]
    examples: list[NodeExample] = Field(default_factory=list)
    graph_constraints: GraphConstraints | None = None

    def wire(self) -> dict[str, Any]:
        """The JSON dict served for this node."""
        return self.model_dump(mode="json")
