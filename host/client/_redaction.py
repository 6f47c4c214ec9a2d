"""Boundary layer: what a plugin may see, and the secrets a run or a request makes known.

Contract: `redact_for_plugin(payload, own_types=..., sensitive=...)` returns a copy of `payload` in
which every sensitive field of every node *not* of that plugin's types carries its mask, and any
`user_config` passes an allow-list (`USER_CONFIG_FIELDS` plus the operator's `[host]
user_config_fields`): only leaves under descriptive keys (provider, model, voice, language...)
survive, at any depth and inside lists; every other leaf is dropped, and URLs lose their userinfo.
A plugin sees its own nodes' secrets in clear and nobody else's.
`learn_secrets(scrubber, sensitive, definitions=..., user_config=...)` is the one place a run or
a request teaches the scrubber its secret values (once, before any plugin call).
Everything is driven by the node types' `sensitive_fields`; the mask rule is `sdk.protocol`'s.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sdk.protocol import (
    MAX_DEPTH,
    SecretScrubber,
    credential_secrets,
    iter_nodes,
    mask_value,
    node_secrets,
)

SensitiveFields = Callable[[str], Sequence[str]]
# Descriptive `user_config` keys whose leaves a plugin may read; every other leaf is dropped.
# A deny-list missed `openai_key`, a bare `key` and keys inside lists: an allow-list cannot.
USER_CONFIG_FIELDS = frozenset(
    {
        "provider", "model", "voice", "voice_id", "language", "languages", "locale", "name",
        "engine", "region", "mode", "type", "version", "format", "encoding", "sample_rate",
        "temperature", "max_tokens", "speed", "pitch", "enabled", "realtime", "tier", "style",
    }
)  # fmt: skip
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact_for_plugin(
    payload: Any,
    *,
    own_types: Iterable[str],
    sensitive: SensitiveFields,
    config_fields: Iterable[str] = (),
) -> Any:
    """Return a deep copy of `payload` fit to send to the plugin owning `own_types`.

    Node dicts (`{"type": str, "data": dict}`) anywhere in the payload have the sensitive fields of
    foreign types masked; a `user_config` mapping anywhere passes the allow-list
    (`USER_CONFIG_FIELDS` plus the operator's `config_fields`).
    """
    owned = frozenset(own_types)
    allowed = USER_CONFIG_FIELDS | {field.lower() for field in config_fields}
    copied = copy.deepcopy(payload)
    _walk(copied, owned, sensitive, allowed)
    return copied


def _walk(
    value: Any, owned: frozenset[str], sensitive: SensitiveFields, allowed: frozenset[str]
) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, owned, sensitive, allowed)
        return
    if not isinstance(value, dict):
        return
    if _is_node(value) and value["type"] not in owned:
        data = value["data"]
        for field in sensitive(value["type"]):
            if data.get(field) not in (None, ""):
                data[field] = mask_value(data[field])
    for key, item in value.items():
        if key == "user_config" and isinstance(item, dict):
            value[key] = allowed_config(item, allowed)
        else:
            _walk(item, owned, sensitive, allowed)


def allowed_config(
    config: Any, allowed: frozenset[str] = USER_CONFIG_FIELDS, depth: int = 0
) -> Any:
    """`config` with only allowed leaves: containers kept (filtered), any other leaf dropped.

    A leaf is kept when the key it sits under (a list's items: the list's key) is allowed, or
    when it is None; kept strings lose a URL's userinfo (`postgres://app:PASSWORD@db` → `db`).
    """
    if depth > MAX_DEPTH:
        return None
    if isinstance(config, dict):
        kept: dict[str, Any] = {}
        for key, item in config.items():
            filtered = _allowed_item(str(key), item, allowed, depth)
            if filtered is not _DROP:
                kept[str(key)] = filtered
        return kept
    return [] if isinstance(config, list) else None


_DROP = object()


def _allowed_item(key: str, item: Any, allowed: frozenset[str], depth: int) -> Any:
    if isinstance(item, dict):
        return allowed_config(item, allowed, depth + 1)
    if isinstance(item, list):
        items = [_allowed_item(key, entry, allowed, depth + 1) for entry in item]
        return [entry for entry in items if entry is not _DROP]
    if item is None:
        return None
    if key.lower() not in allowed:
        return _DROP
    return strip_userinfo(item) if isinstance(item, str) else item


def strip_userinfo(text: str) -> str:
    """Remove `user:password@` from every URL in `text`."""
    return _URL_USERINFO.sub(r"\1", text)


def _is_node(value: dict[str, Any]) -> bool:
    return isinstance(value.get("type"), str) and isinstance(value.get("data"), dict)


def learn_secrets(
    scrubber: SecretScrubber,
    sensitive: SensitiveFields,
    *,
    definitions: Iterable[Mapping[str, Any] | None] = (),
    user_config: Mapping[str, Any] | None = None,
) -> SecretScrubber:
    """Teach `scrubber` the secrets of some definitions and a user_config; returns it."""
    for definition in definitions:
        if definition:
            scrubber.add(node_secrets(iter_nodes(definition), sensitive))
    if user_config:
        scrubber.add(credential_secrets(user_config))
    return scrubber
