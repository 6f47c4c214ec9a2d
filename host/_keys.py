"""Ownership layer: the keys of a run's logs and annotations that belong to the host.

Contract: `HOST_WRITER` is the writer name of host-owned keys; keys starting with one of
`RESERVED_PREFIXES` may only be written by the host, whoever comes first (its live-delivery
figures under `LIVE_KEY` and the error entries it records as `integration_<plugin>`). `LogStore`
is what the live-call layer needs of a run store: an ownership-checked merge into a run's logs.

`KeyRule` is which keys one plugin may write at all, checked before any merge so that a squatter
writing first can never block the rightful writer: its own name and keys prefixed by it
(`<name>_...`, `<name>.`, `<name>-`) unless a longer plugin name claims the key (`call_` never
owns `call_metrics`), plus exact keys (its completion nodes' ids, its node types' names, the
snapshot keys its manifest declares and `granted_keys` grants); another plugin's node id never.
Everything else is refused and recorded as that plugin's error.

Artifacts live in their plugin's namespace: `artifact_path(owner, name)` is `<owner>/<name>` for a
plugin name and a plain file name (`ARTIFACT_NAME`: no `/`, no `..`, no leading dot), and raises
`InvalidArtifactName` for anything else. Every store backend calls it, so a plugin can neither
replace another plugin's artifact nor publish a path, whatever its SDK did.
Leaf module: the run store, runtime and completion all read these names from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

HOST_WRITER = "host"
RESERVED_PREFIXES = ("plugbox_", "integration_")
LIVE_KEY = "plugbox_live"
# A plain file name: starts with a letter or digit, so never `.`, `..` or a hidden file.
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # as the manifest's `name`


class InvalidArtifactName(ValueError):
    """An artifact name that is not a plain file name, or an owner that is not a plugin name."""


def artifact_path(owner: str, name: str) -> str:
    """`<owner>/<name>`, the artifact's namespaced name; raises `InvalidArtifactName`."""
    if not PLUGIN_NAME.fullmatch(owner):
        raise InvalidArtifactName(f"artifact owner {owner!r} is not a plugin name")
    if not ARTIFACT_NAME.fullmatch(name):
        raise InvalidArtifactName(
            f"artifact name {name!r} is not a plain file name ({ARTIFACT_NAME.pattern})"
        )
    return f"{owner}/{name}"


class MergeOutcome(Protocol):
    """What a merge reports: keys written, and keys refused with their owner."""

    @property
    def applied(self) -> list[str]: ...
    @property
    def refused(self) -> list[tuple[str, str]]: ...


class LogStore(Protocol):
    """A run store, as the live-call layer writes to it."""

    async def merge_logs(
        self, run_id: int, entries: dict[str, Any], *, writer: str
    ) -> MergeOutcome: ...
    async def merge_logs_many(
        self, run_id: int, batches: list[tuple[str, dict[str, Any]]]
    ) -> Sequence[MergeOutcome]:
        """Several writers' entries in one transaction: one report per batch."""
        ...


@dataclass(frozen=True)
class KeyRule:
    """The keys of a run's logs or annotations one plugin may write."""

    plugin: str
    exact: frozenset[str] = frozenset()  # its own node ids or type names
    foreign: frozenset[str] = frozenset()  # other plugins' node ids: never, prefix or not
    rivals: tuple[str, ...] = ()  # every other plugin's name

    @classmethod
    def build(
        cls,
        plugin: str,
        *,
        exact: Iterable[str] = (),
        foreign: Iterable[str] = (),
        plugins: Iterable[str] = (),
    ) -> KeyRule:
        own = frozenset(exact)
        return cls(
            plugin,
            own,
            frozenset(foreign) - own,
            tuple(sorted(set(plugins) - {plugin})),
        )

    def owns(self, key: str) -> bool:
        if key in self.exact:
            return True
        if key in self.foreign or key.startswith(RESERVED_PREFIXES):
            return False
        if not _prefixed(key, self.plugin):
            return False
        return not any(len(r) > len(self.plugin) and _prefixed(key, r) for r in self.rivals)

    def split(self, entries: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(the entries it may write, the keys it may not)."""
        mine = {k: v for k, v in entries.items() if self.owns(k)}
        return mine, [k for k in entries if k not in mine]


def granted_keys(
    plugin: str,
    declared: Mapping[str, Iterable[str]],
    *,
    plugins: Iterable[str] = (),
    taken: Iterable[str] = (),
) -> frozenset[str]:
    """The snapshot keys `plugin` declared (`declared[plugin]`, from its manifest) it may have.

    A declared key is never a way into another's namespace: one that is reserved, in `taken`
    (other plugins' node type names), declared by another plugin too, or owned by another plugin's
    name prefix is granted to no one who declared it; the rightful owner keeps its prefix."""
    names = set(plugins) | set(declared)
    others = {name: KeyRule.build(name, plugins=names) for name in names if name != plugin}
    refused = set(taken)
    for name, keys in declared.items():
        if name != plugin:
            refused.update(keys)
    return frozenset(
        key
        for key in declared.get(plugin, ())
        if key not in refused
        and not key.startswith(RESERVED_PREFIXES)
        and not any(rule.owns(key) for rule in others.values())
    )


def _prefixed(key: str, name: str) -> bool:
    return key == name or key.startswith((f"{name}_", f"{name}.", f"{name}-"))
