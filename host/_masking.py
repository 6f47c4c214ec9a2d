"""Masking layer: secrets in workflow definitions, masked for reading and restored on write-back.

Contract (the reference's rules, `contract-reference.md` "Masking"; the mask itself is
`sdk.protocol.mask_value`, shared with the plugins).
Reading a definition masks every sensitive field of every node whose type declares it. Writing back
restores a field whose incoming value equals the mask of the stored value of the node with the same
id; any other value is a new secret, and a value that still looks masked is refused. Everything
here is driven by a `SensitiveFields` lookup (node type -> field names): no plugin-specific branch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sdk.protocol import MASK_CHAR, iter_nodes, mask_value, node_data

SensitiveFields = Callable[[str], Sequence[str]]
"""Looks up the sensitive field names of a node type (empty for unknown types)."""

MASK_MARKER = "***"  # a value containing this is taken to be a mask, never a real secret


def looks_masked(value: Any) -> bool:
    """True when a value (or any string inside it) still carries the mask marker."""
    if isinstance(value, str):
        return MASK_MARKER in value or (bool(value) and set(value) == {MASK_CHAR})
    if isinstance(value, list):
        return any(looks_masked(item) for item in value)
    if isinstance(value, dict):
        return any(looks_masked(item) for item in value.values())
    return False


def mask_definition(definition: dict[str, Any], sensitive: SensitiveFields) -> dict[str, Any]:
    """Return a deep copy of `definition` with every sensitive field of every node masked."""
    masked = copy.deepcopy(definition)
    for node in iter_nodes(masked):
        data = node_data(node)
        for field in sensitive(str(node.get("type", ""))):
            if data.get(field) not in (None, ""):
                data[field] = mask_value(data[field])
    return masked


@dataclass(frozen=True)
class MaskedSecretProblem:
    """A sensitive field that still holds a mask after merging: the caller must send the value."""

    node_id: str
    field: str

    @property
    def message(self) -> str:
        return (
            f"node {self.node_id!r} field {self.field!r} appears to be masked; "
            "provide the real value"
        )


class MaskedSecretError(ValueError):
    """Raised by `merge_secrets` when a secret still looks masked and matches no stored value."""

    def __init__(self, problems: list[MaskedSecretProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(problem.message for problem in problems))


def merge_secrets(
    incoming: dict[str, Any], stored: dict[str, Any], sensitive: SensitiveFields
) -> dict[str, Any]:
    """Restore real secrets into `incoming` where it carries the mask of the stored value.

    Nodes are matched by `id`. Returns a new definition; raises `MaskedSecretError` listing every
    sensitive field that still looks masked but matches no stored value.
    """
    stored_by_id = {str(node.get("id")): node for node in iter_nodes(stored)}
    merged = copy.deepcopy(incoming)
    problems: list[MaskedSecretProblem] = []
    for node in iter_nodes(merged):
        node_id = str(node.get("id"))
        data = node_data(node)
        old = node_data(stored_by_id.get(node_id, {}))
        for field in sensitive(str(node.get("type", ""))):
            if field not in data:
                continue
            data[field] = _restore(data[field], old.get(field))
            if looks_masked(data[field]):
                problems.append(MaskedSecretProblem(node_id, field))
    if problems:
        raise MaskedSecretError(problems)
    return merged


def _restore(new: Any, old: Any) -> Any:
    """Pick the stored value where `new` is exactly its mask, element-wise for lists and dicts."""
    if old is not None and new == mask_value(old):
        return old
    if isinstance(new, list) and isinstance(old, list):
        return [_restore_item(item, index, old) for index, item in enumerate(new)]
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: _restore(value, old.get(key)) for key, value in new.items()}
    return new


def _restore_item(item: Any, index: int, old: list[Any]) -> Any:
    """Restore a list element from the same position, else from the one stored value it masks."""
    if index < len(old) and item == mask_value(old[index]):
        return old[index]
    candidates = [value for value in old if item == mask_value(value)]
    return candidates[0] if len(candidates) == 1 else item
