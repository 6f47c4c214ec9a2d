"""Boundary layer: what a plugin may see, and the secrets a run or a request makes known.

Contract: `redact_for_plugin(payload, own_types=..., sensitive=...)` returns a copy of `payload` in
which every sensitive field of every node *not* of that plugin's types carries its mask and every
credential-like key of any `user_config` is masked: a plugin sees its own nodes' secrets in clear
and nobody else's. `learn_secrets(scrubber, sensitive, definitions=..., user_config=...)` is the one
place a run or a request teaches the scrubber its secret values (once, before any plugin call).
Everything is driven by the node types' `sensitive_fields`; the mask rule is `sdk.protocol`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sdk.protocol import (
    CREDENTIAL_KEY,
    SecretScrubber,
    credential_secrets,
    iter_nodes,
    mask_value,
    node_secrets,
)

SensitiveFields = Callable[[str], Sequence[str]]


def redact_for_plugin(payload: Any, *, own_types: Iterable[str], sensitive: SensitiveFields) -> Any:
    """A deep copy of `payload` fit to send to the plugin owning `own_types`."""
    owned = frozenset(own_types)
    copied = copy.deepcopy(payload)
    _walk(copied, owned, sensitive)
    return copied


def _walk(value: Any, owned: frozenset[str], sensitive: SensitiveFields) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, owned, sensitive)
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
            _mask_credentials(item)
        _walk(item, owned, sensitive)


def _is_node(value: dict[str, Any]) -> bool:
    return isinstance(value.get("type"), str) and isinstance(value.get("data"), dict)


def _mask_credentials(config: dict[str, Any]) -> None:
    """Mask credential-like keys at any depth of a user_config mapping, in place."""
    for key, item in config.items():
        if CREDENTIAL_KEY.search(str(key)) and isinstance(item, str | list | dict):
            config[key] = mask_value(item)
        elif isinstance(item, dict):
            _mask_credentials(item)


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
