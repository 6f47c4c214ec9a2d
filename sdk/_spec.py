"""Authoring layer: the node spec wire models (`NodeSpec`, `PropertySpec` and their parts).

Contract: `NodeSpec.model_dump(mode="json")` is exactly the shape `/api/v1/node-types` serves for
one node in the reference framework: every key present (nulls included), unknown keys forbidden,
descriptions non-empty. These models are pure data; `build_spec` derives them from node models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0.0"


class PropertyType(StrEnum):
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


class PropertyOption(_WireModel):
    value: Any
    label: str
    description: str | None = None


class DisplayOptions(_WireModel):
    """When a property is shown: `show` keys AND-combined, `hide` keys OR-combined."""

    show: dict[str, list[Any]] | None = None
    hide: dict[str, list[Any]] | None = None


class PropertySpec(_WireModel):
    name: str
    type: PropertyType
    display_name: str
    description: str = Field(min_length=1)
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
    extra: dict[str, Any] | None = None


class NodeExample(_WireModel):
    name: str
    description: str | None = None
    data: dict[str, Any]


class NodeMigration(_WireModel):
    from_version: str
    to_version: str
    description: str


class GraphConstraints(_WireModel):
    """How a node may be connected; None means unbounded."""

    min_incoming: int | None = None
    max_incoming: int | None = None
    min_outgoing: int | None = None
    max_outgoing: int | None = None


class NodeSpec(_WireModel):
    name: str
    display_name: str
    description: str = Field(min_length=1)
    category: NodeCategory
    icon: str
    version: str = SPEC_VERSION
    properties: list[PropertySpec] = Field(default_factory=list)
    examples: list[NodeExample] = Field(default_factory=list)
    migrations: list[NodeMigration] = Field(default_factory=list)
    graph_constraints: GraphConstraints = Field(default_factory=GraphConstraints)

    def wire(self) -> dict[str, Any]:
        """The JSON dict served for this node."""
        return self.model_dump(mode="json")
