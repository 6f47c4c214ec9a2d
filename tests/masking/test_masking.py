"""Masking rules of the contract: mask for reading, masked round trip on write-back."""

from __future__ import annotations

from typing import Any

import pytest

from host._masking import MaskedSecretError, looks_masked, mask_definition, merge_secrets
from sdk.protocol import mask_value

SENSITIVE = {"crm": ("api_key", "tokens"), "notifier": ("webhook_url",)}


def sensitive(type_name: str) -> tuple[str, ...]:
    return SENSITIVE.get(type_name, ())


def definition(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": list(nodes), "edges": []}


def crm(node_id: str = "n1", **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "crm", "data": {"name": "CRM", **data}}


@pytest.mark.parametrize(
    ("secret", "mask"),
    [
        ("abcd", "****"),
        ("abc", "***"),
        ("abcde", "*bcde"),
        ("", ""),
    ],
)
def test_a_mask_keeps_only_the_last_four_characters(secret: str, mask: str) -> None:
    assert mask_value(secret) == mask
    assert len(mask_value(secret)) == len(secret)


def test_the_reference_example_masks_as_documented() -> None:
    assert mask_value("sk-1234567890abcdef") == "*" * 15 + "cdef"


def test_reading_masks_every_sensitive_field_and_leaves_the_rest() -> None:
    stored = definition(
        crm(api_key="sk-live-0123456789", region="eu"),
        {"id": "n2", "type": "other", "data": {"api_key": "not-declared-here"}},
    )
    masked = mask_definition(stored, sensitive)
    assert masked["nodes"][0]["data"] == {
        "name": "CRM",
        "api_key": "**************6789",
        "region": "eu",
    }
    assert masked["nodes"][1]["data"]["api_key"] == "not-declared-here"
    assert stored["nodes"][0]["data"]["api_key"] == "sk-live-0123456789"


def test_an_unchanged_mask_is_restored_to_the_stored_secret() -> None:
    stored = definition(crm(api_key="sk-live-0123456789"))
    incoming = mask_definition(stored, sensitive)
    merged = merge_secrets(incoming, stored, sensitive)
    assert merged["nodes"][0]["data"]["api_key"] == "sk-live-0123456789"


def test_a_new_value_is_taken_as_the_new_secret() -> None:
    stored = definition(crm(api_key="sk-live-0123456789"))
    incoming = definition(crm(api_key="sk-rotated-999999"))
    merged = merge_secrets(incoming, stored, sensitive)
    assert merged["nodes"][0]["data"]["api_key"] == "sk-rotated-999999"


def test_the_mask_of_a_different_secret_is_not_restored_and_is_refused() -> None:
    stored = definition(crm(api_key="sk-live-0123456789"))
    incoming = definition(crm(api_key=mask_value("sk-other-000000000")))
    with pytest.raises(MaskedSecretError) as caught:
        merge_secrets(incoming, stored, sensitive)
    assert [(p.node_id, p.field) for p in caught.value.problems] == [("n1", "api_key")]
    assert "appears to be masked; provide the real value" in str(caught.value)


def test_a_node_missing_from_the_stored_definition_keeps_its_new_secret() -> None:
    stored = definition(crm("n1", api_key="sk-live-0123456789"))
    incoming = definition(
        crm("n1", api_key="sk-live-0123456789"), crm("n9", api_key="fresh-key-42")
    )
    merged = merge_secrets(incoming, stored, sensitive)
    assert merged["nodes"][1]["data"]["api_key"] == "fresh-key-42"


def test_a_masked_value_on_a_node_missing_from_the_stored_definition_is_refused() -> None:
    stored = definition()
    incoming = definition(crm("n9", api_key="**********6789"))
    with pytest.raises(MaskedSecretError):
        merge_secrets(incoming, stored, sensitive)


def test_lists_of_secrets_are_restored_element_by_element() -> None:
    stored = definition(crm(tokens=["token-aaaa-1111", "token-bbbb-2222"]))
    incoming = definition(crm(tokens=[mask_value("token-bbbb-2222"), "token-new-3333"]))
    merged = merge_secrets(incoming, stored, sensitive)
    assert merged["nodes"][0]["data"]["tokens"] == ["token-bbbb-2222", "token-new-3333"]


def test_nodes_as_an_id_mapping_are_handled_like_a_list() -> None:
    stored = {"nodes": {"n1": crm(api_key="sk-live-0123456789")}}
    masked = mask_definition(stored, sensitive)
    assert looks_masked(masked["nodes"]["n1"]["data"]["api_key"])
    assert merge_secrets(masked, stored, sensitive) == stored
