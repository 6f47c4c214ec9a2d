"""Registry layer: the contract's host-side lookups, backed by the plugins and a spec cache.

Contract: `refresh()` loads every plugin's `spec` once — from the disk cache when the plugin's
content hash (manifest, package files, SDK) is unchanged, so a warm listing starts no process,
else over the wire — and builds the indexes the lookups read. Packages iterate sorted by name, as
in the reference. A plugin whose spec cannot be loaded is listed in `errors` and the others still
serve.

Node-type ownership is explicit: a type declared by one plugin belongs to it; a type declared by
two or more is served by none of them (an error naming every claimant, in `errors`) until the
operator pins its owner in the grants file (`[plugins.<name>] node_types = [...]`). A pin is
honoured only if exactly one claimant holds it. A contested type has no spec, no owner and no
validation, so no claimant receives its nodes' data; masking still uses the union of every
claimant's sensitive fields, so a hijacker declaring fewer secrets can never unmask the owner's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from sdk.protocol import PluginError, SpecResult, ValidateItem, ValidateOutcome, ValidationIssue

from ._manifest import Manifest

if TYPE_CHECKING:
    from .client import PluginClient

logger = logging.getLogger("plugbox.registry")


@dataclass(frozen=True)
class PackageInfo:
    name: str
    manifest: Manifest
    spec: SpecResult
    # Declared types this plugin does not serve: contested, or pinned to another claimant.
    unserved: frozenset[str] = frozenset()

    @property
    def declared_types(self) -> list[str]:
        return [node.type_name for node in self.spec.nodes]

    @property
    def type_names(self) -> list[str]:
        """The node types this plugin serves (owns): only these nodes' data reach it."""
        return [t for t in self.declared_types if t not in self.unserved]


@dataclass(frozen=True)
class PluginLoadError:
    name: str
    message: str


class Registry:
    """Node types, sensitive fields and capabilities of every loaded plugin."""

    def __init__(
        self,
        manifests: Mapping[str, Manifest],
        client: Callable[[str], PluginClient],
        cache_dir: Path,
        sdk_hash: str,
        pins: Callable[[], Mapping[str, tuple[str, ...]]] = dict,
    ) -> None:
        self._manifests = manifests
        self._client = client
        self._pins = pins  # node type -> plugins the operator pinned it to (grants file)
        self._cache_dir = cache_dir
        self._sdk_hash = sdk_hash
        self.errors: list[PluginLoadError] = []
        self._packages: dict[str, PackageInfo] = {}
        self._owner: dict[str, str] = {}
        self._claimants: dict[str, list[str]] = {}
        self._specs: dict[str, dict[str, Any]] = {}
        self._sensitive: dict[str, tuple[str, ...]] = {}
        self._listing: list[dict[str, Any]] = []
        self.spec_fetches = 0  # specs fetched over the wire (tests assert warm = 0)
        self._refresh_lock = anyio.Lock()
        self._refreshes = 0  # completed refreshes

    # -- loading --------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Load every plugin's spec (cache first), then rebuild the indexes. Callers that ask
        while a refresh runs share the next one to finish: ten jobs of a worker meeting a plugin
        that failed to load start it once, not ten times (on a busy machine those concurrent
        starts made every handshake time out, and every job with them)."""
        asked = self._refreshes
        async with self._refresh_lock:
            if self._refreshes > asked:
                return  # one finished while this caller waited for it
            await self._refresh()
            self._refreshes += 1

    async def _refresh(self) -> None:
        loaded: dict[str, SpecResult] = {}
        errors: list[PluginLoadError] = []

        async def load(name: str) -> None:
            try:
                loaded[name] = await self._load(self._manifests[name])
            except PluginError as exc:
                errors.append(PluginLoadError(name, str(exc)))
                logger.error("plugin %r: cannot load its spec: %s", name, exc)

        async with anyio.create_task_group() as group:
            for name in self._manifests:
                group.start_soon(load, name)
        self._index(loaded, errors)

    async def _load(self, manifest: Manifest) -> SpecResult:
        path = self._cache_dir / f"{manifest.name}-{self._key(manifest)}.json"
        if path.exists():
            try:
                return msgspec.json.decode(path.read_bytes(), type=SpecResult)
            except (msgspec.DecodeError, msgspec.ValidationError):
                path.unlink(missing_ok=True)
        spec = await self._client(manifest.name).spec()
        self.spec_fetches += 1
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._cache_dir.glob(f"{manifest.name}-*.json"):
            stale.unlink(missing_ok=True)
        path.write_bytes(msgspec.json.encode(spec))
        return spec

    def _key(self, manifest: Manifest) -> str:
        return f"{manifest.source_hash()[:20]}-{self._sdk_hash[:12]}"

    def _index(self, loaded: dict[str, SpecResult], errors: list[PluginLoadError]) -> None:
        claimants: dict[str, list[str]] = {}
        for name in sorted(loaded):
            for node in loaded[name].nodes:
                claimants.setdefault(node.type_name, []).append(name)
        owner = self._owners(claimants, errors)
        packages = {
            name: PackageInfo(
                name,
                self._manifests[name],
                loaded[name],
                frozenset(
                    t for t, names in claimants.items() if name in names and owner.get(t) != name
                ),
            )
            for name in sorted(loaded)
        }
        self._packages, self._owner, self._claimants = packages, owner, claimants
        self.errors = sorted(errors, key=lambda e: (e.name, e.message))
        served = [
            node
            for info in packages.values()
            for node in info.spec.nodes
            if owner.get(node.type_name) == info.name
        ]
        self._specs = {node.type_name: node.spec for node in served}
        sensitive: dict[str, set[str]] = {}
        for info in packages.values():  # every claimant's secrets, served or not
            for node in info.spec.nodes:
                sensitive.setdefault(node.type_name, set()).update(node.sensitive_fields)
        self._sensitive = {t: tuple(sorted(fields)) for t, fields in sensitive.items()}
        self._listing = [self._specs[name] for name in sorted(self._specs)]

    def _owners(
        self, claimants: dict[str, list[str]], errors: list[PluginLoadError]
    ) -> dict[str, str]:
        """Each served type's owner: its sole claimant, or the one pinned claimant."""
        pins = self._pins()
        owner: dict[str, str] = {}
        for type_name, names in claimants.items():
            pinned = [n for n in pins.get(type_name, ()) if n in names]
            if len(pinned) == 1:
                owner[type_name] = pinned[0]
            elif len(names) == 1 and not pins.get(type_name):
                owner[type_name] = names[0]
            else:
                why = (
                    f"pinned to {sorted(pins.get(type_name, ()))}, which is not exactly one "
                    "of its claimants"
                    if pins.get(type_name)
                    else "served by none of them until the operator pins its owner: "
                    f"`plugbox plugins grant <name> --node-type {type_name}`"
                )
                for name in names:
                    errors.append(
                        PluginLoadError(
                            name, f"node type {type_name!r} is claimed by {names}: {why}"
                        )
                    )
        return owner

    # -- lookups (sync, from memory) --------------------------------------------------------------

    def all_node_specs(self) -> list[dict[str, Any]]:
        return list(self._listing)

    def get_node_spec(self, type_name: str) -> dict[str, Any] | None:
        return self._specs.get(type_name)

    def package_for_type(self, type_name: str) -> str | None:
        return self._owner.get(type_name)

    def claimants(self, type_name: str) -> list[str]:
        """Every loaded plugin declaring `type_name` (more than one: contested unless pinned)."""
        return list(self._claimants.get(type_name, ()))

    def conflicts(self) -> dict[str, list[str]]:
        """Contested node types (not served) and the plugins claiming each."""
        return {t: list(n) for t, n in self._claimants.items() if t not in self._owner}

    def sensitive_fields(self, type_name: str) -> tuple[str, ...]:
        return self._sensitive.get(type_name, ())

    def get_package(self, name: str) -> PackageInfo | None:
        return self._packages.get(name)

    def packages(self) -> list[PackageInfo]:
        return list(self._packages.values())

    def packages_with_runtime(self) -> list[str]:
        return [n for n, p in self._packages.items() if p.spec.capabilities.runtime]

    def packages_with_completion(self) -> list[str]:
        return [n for n, p in self._packages.items() if p.spec.capabilities.completion]

    def packages_with_routes(self) -> list[str]:
        return [n for n, p in self._packages.items() if p.spec.capabilities.routes]

    # -- validation -----------------------------------------------------------------------------

    async def validate_nodes(self, items: list[ValidateItem]) -> list[ValidateOutcome]:
        """Validate node data through the owning plugins, one `validate` call per plugin."""
        outcomes: list[ValidateOutcome | None] = [None] * len(items)
        batches: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            owner = self._owner.get(item.type_name)
            if owner is None:
                issue = ValidationIssue(
                    ["type"], f"Unknown node type: '{item.type_name}'", "unknown_type"
                )
                outcomes[index] = ValidateOutcome(ok=False, errors=[issue])
            else:
                batches.setdefault(owner, []).append(index)

        async def run(plugin: str, indexes: list[int]) -> None:
            try:
                answers = await self._client(plugin).validate([items[i] for i in indexes])
            except PluginError as exc:
                answers = [
                    ValidateOutcome(
                        ok=False, errors=[ValidationIssue([], str(exc), "plugin_error")]
                    )
                ] * len(indexes)
            for index, outcome in zip(indexes, answers, strict=False):
                outcomes[index] = outcome

        async with anyio.create_task_group() as group:
            for plugin, indexes in batches.items():
                group.start_soon(run, plugin, indexes)
        missing = ValidateOutcome(
            ok=False, errors=[ValidationIssue([], "no answer", "plugin_error")]
        )
        return [outcome or missing for outcome in outcomes]

    async def validate_node(self, type_name: str, data: dict[str, Any]) -> ValidateOutcome:
        return (await self.validate_nodes([ValidateItem(type_name, data)]))[0]
