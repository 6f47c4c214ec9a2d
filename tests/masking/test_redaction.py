"""Least privilege: what one plugin is sent, and secret values scrubbed from text and results."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from host.client import USER_CONFIG_FIELDS, allowed_config, redact_for_plugin
from sdk.protocol import (
    MAX_DEPTH,
    TOO_DEEP,
    ScrubbingFilter,
    SecretScrubber,
    credential_secrets,
    iter_nodes,
    mask_value,
    node_secrets,
)

SENSITIVE = {"crm": ("api_key",), "notifier": ("webhook_url",)}


def sensitive(type_name: str) -> tuple[str, ...]:
    return SENSITIVE.get(type_name, ())


CRM_KEY = "crm-secret-key-0001"
HOOK = "https://hooks.example.test/T000/B000/secretpath"
OPENAI = "sk-openai-provider-key"


def payload() -> dict[str, Any]:
    nodes = [
        {"id": "a", "type": "crm", "data": {"api_key": CRM_KEY, "name": "crm"}},
        {"id": "b", "type": "notifier", "data": {"webhook_url": HOOK, "name": "hook"}},
    ]
    return {
        "workflow_graph": {"nodes": {node["id"]: node for node in nodes}},
        "workflow_definition": {"nodes": nodes, "edges": []},
        "user_config": {"llm": {"provider": "openai", "api_key": OPENAI}, "language": "en"},
    }


def test_a_plugin_sees_its_own_secrets_in_clear_and_others_only_masked() -> None:
    seen = redact_for_plugin(payload(), own_types={"crm"}, sensitive=sensitive)
    for nodes in (
        seen["workflow_definition"]["nodes"],
        list(seen["workflow_graph"]["nodes"].values()),
    ):
        assert nodes[0]["data"]["api_key"] == CRM_KEY
        assert nodes[1]["data"]["webhook_url"] == mask_value(HOOK)


def test_user_config_passes_an_allow_list_at_any_depth_and_in_lists() -> None:
    seen = redact_for_plugin(payload(), own_types={"crm"}, sensitive=sensitive)
    assert seen["user_config"]["llm"] == {"provider": "openai"}
    assert seen["user_config"]["language"] == "en"
    config = {
        "stt": [{"provider": "deepgram", "key": OPENAI}, OPENAI],
        "tts": {"voice": "alloy", "openai_key": OPENAI, "extra": [[{"token": OPENAI}]]},
        "url": f"redis://:{OPENAI}@cache:6379/0",
        "note": None,
    }
    assert allowed_config(config) == {
        "stt": [{"provider": "deepgram"}],
        "tts": {"voice": "alloy", "extra": [[{}]]},
        "note": None,
    }
    extended = allowed_config(config, USER_CONFIG_FIELDS | {"url"})
    assert extended["url"] == "redis://cache:6379/0"
    assert OPENAI not in str(extended)


def test_the_scrubber_is_iterative_bounded_and_never_raises() -> None:
    scrubber = SecretScrubber()
    scrubber.add([CRM_KEY])
    deep: Any = CRM_KEY
    for _ in range(10_000):
        deep = [deep]
    scrubbed = scrubber.scrub({"deep": deep, "flat": CRM_KEY, "lone": "\udcff" + CRM_KEY})
    assert scrubbed["flat"] == mask_value(CRM_KEY)
    assert scrubbed["lone"] == "\udcff" + mask_value(CRM_KEY)
    level, depth = scrubbed["deep"], 1
    while isinstance(level, list):
        level, depth = level[0], depth + 1
    assert (level, depth) == (TOO_DEEP, MAX_DEPTH)
    assert CRM_KEY not in str(scrubbed)
    assert scrubber.scrub({1: object()})  # not JSON: still an answer, never an exception


def test_redaction_returns_a_copy_and_leaves_the_original_intact() -> None:
    original = payload()
    redact_for_plugin(original, own_types=set(), sensitive=sensitive)
    assert original == payload()


def test_the_scrubber_masks_known_secrets_in_text_and_json() -> None:
    scrubber = SecretScrubber()
    scrubber.add(node_secrets(iter_nodes(payload()["workflow_definition"]), sensitive))
    scrubber.add(credential_secrets(payload()["user_config"]))
    text = f"failed to post to {HOOK} with key {CRM_KEY} ({OPENAI})"
    cleaned = scrubber.scrub_text(text)
    for secret in (HOOK, CRM_KEY, OPENAI):
        assert secret not in cleaned
    assert mask_value(CRM_KEY) in cleaned
    assert scrubber.scrub({"echo": [CRM_KEY], CRM_KEY: 1}) == {
        "echo": [mask_value(CRM_KEY)],
        mask_value(CRM_KEY): 1,
    }


def test_the_logging_filter_scrubs_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scrubber = SecretScrubber()
    scrubber.add([CRM_KEY])
    logger = logging.getLogger("plugbox.test.redaction")
    logger.addFilter(ScrubbingFilter(scrubber))
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("key is %s", CRM_KEY)
            try:
                raise RuntimeError(f"bad key {CRM_KEY}")
            except RuntimeError:
                logger.exception("delivery failed")
    finally:
        logger.filters.clear()
    assert CRM_KEY not in caplog.text
    assert mask_value(CRM_KEY) in caplog.text
