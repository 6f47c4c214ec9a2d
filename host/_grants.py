"""Permission layer: the plugin asks (its manifest), the operator grants (a host-side file).

Contract: a plugin's manifest only *requests* (env keys, network, writable sub-paths of its data
directory, a policy floor, limits, an interpreter). The operator's decisions live in `grants.toml`
in the host's data directory (or a file named with `--grants`), never in a plugin's folder:

    [host]
    interpreters = ["/usr/bin/python3.12"]   # interpreters a manifest's `python =` may name
    user_config_fields = ["persona"]          # user_config keys plugins may read (beyond defaults)

    [plugins.webhook]
    network = ["hooks.example.com:443"]      # or `true`: all network (operator-only)
    env = ["WEBHOOK_TOKEN"]
    writable_paths = ["cache"]
    policy = "strict"                        # the operator's policy for this plugin (`off` too)
    declined = ["network:*:443"]             # requests seen and refused: run without them
    node_types = ["webhook"]                 # pins the owner of a type two plugins declare
    request_headers = ["authorization"]      # credential headers its routes may receive
    [plugins.webhook.limits]
    memory_mb = 1024                         # raises the cap for this plugin

`resolve(manifest, grants, host_policy)` is what the plugin runs with: every request is granted,
declined, or an *excess*; any excess refuses the start (`NotGranted`, naming each one). A plugin
requesting nothing needs no entry. `review(...)` is the same decision as table rows.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sdk.protocol import SandboxError

from ._manifest import Limits, Manifest, SandboxPolicyName, parse_destination
from .sandbox import SandboxPolicy

GRANTS_FILE = "grants.toml"
_STRICTNESS = {
    SandboxPolicy.off: 0,
    SandboxPolicy.process_only: 1,
    SandboxPolicy.standard: 2,
    SandboxPolicy.strict: 3,
}
# Every limit and deadline of a manifest is capped by the operator: a plugin choosing its own
# timeouts could hold a call's start or a completion run hostage (issue #14).
CAPPED_LIMITS = (
    "memory_mb",
    "cpu_seconds",
    "open_files",
    "file_size_mb",
    "disk_mb",
    "pids",
    "call_timeout_s",
    "startup_timeout_s",
    "completion_timeout_s",
)
Status = Literal["granted", "declined", "excess"]


class NotGranted(SandboxError):
    """A plugin requests what the operator has not granted; `data["excess"]` lists each one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitCaps(_Strict):
    """Upper bounds on a plugin's requested limits (the manifest defaults fit under them)."""

    memory_mb: int = Field(1024, ge=32)
    cpu_seconds: int = Field(600, ge=1)
    open_files: int = Field(1024, ge=16)
    file_size_mb: int = Field(256, ge=1)
    disk_mb: int = Field(1024, ge=1)
    pids: int = Field(256, ge=4)
    call_timeout_s: float = Field(30.0, gt=0)
    startup_timeout_s: float = Field(30.0, gt=0)
    completion_timeout_s: float = Field(120.0, gt=0)


class PluginGrant(_Strict):
    policy: SandboxPolicyName | None = None
    env: tuple[str, ...] = ()
    network: bool | tuple[str, ...] = False
    writable_paths: tuple[str, ...] = ()
    limits: dict[str, int | float] = Field(default_factory=dict)
    declined: tuple[str, ...] = ()
    # Also serve the plugin's routes at the reference platform's `/api/v1/<router prefix>/...`.
    reference_routes: bool = False
    # Node types the operator pins to this plugin: a type declared by two plugins is served by
    # neither until exactly one of them holds its pin (see `Registry`).
    node_types: tuple[str, ...] = ()
    # Credential headers (`authorization`, `cookie`, `x-api-key`...) its proxied routes may see.
    request_headers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _honourable(self) -> PluginGrant:
        validate_grant(self)
        return self


class HostGrants(_Strict):
    interpreters: tuple[str, ...] = ()
    limits: LimitCaps = LimitCaps()
    # `user_config` keys whose values plugins may read, beyond the built-in descriptive ones.
    user_config_fields: tuple[str, ...] = ()


class Grants(_Strict):
    """The operator's whole grants file."""

    host: HostGrants = HostGrants()
    plugins: dict[str, PluginGrant] = Field(default_factory=dict)

    def for_plugin(self, name: str) -> PluginGrant:
        return self.plugins.get(name, PluginGrant())

    def type_pins(self) -> dict[str, tuple[str, ...]]:
        """Node type -> the plugins the operator pinned it to (one, unless misconfigured)."""
        pins: dict[str, tuple[str, ...]] = {}
        for name, grant in sorted(self.plugins.items()):
            for type_name in grant.node_types:
                pins[type_name] = (*pins.get(type_name, ()), name)
        return pins

    def with_plugin(self, name: str, grant: PluginGrant) -> Grants:
        return self.model_copy(update={"plugins": {**self.plugins, name: grant}})


def load_grants(path: Path) -> Grants:
    """The grants file at `path` (none there: no grants); a broken file is a `ValueError`."""
    if not path.exists():
        return Grants()
    try:
        return Grants.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"grants file {path}: {exc}") from None


def save_grants(grants: Grants, path: Path) -> None:
    """Write the grants file (owner-only: it names the secrets plugins may see)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# plugbox grants: the operator's decisions (see docs/security.md).", ""]
    host = grants.host.model_dump(exclude_defaults=True)
    if host:
        lines += _table("host", host)
    for name, grant in sorted(grants.plugins.items()):
        lines += _table(f"plugins.{name}", grant.model_dump(exclude_defaults=True))
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("\n".join(lines), encoding="utf-8")
    staging.chmod(0o600)
    staging.replace(path)


def _table(name: str, values: dict[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    nested = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key, value in values.items():
        if key not in nested:
            lines.append(f"{key} = {_toml_value(value)}")
    lines.append("")
    for key, table in nested.items():
        if table:
            lines += _table(f"{name}.{key}", table)
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


@dataclass(frozen=True)
class Decision:
    """One request and the operator's answer to it."""

    label: str  # e.g. "env:API_KEY", "network:api.example.com:443", "policy:off"
    requested: str
    granted: str
    status: Status
    why: str = ""


@dataclass(frozen=True)
class Effective:
    """What a plugin runs with: only what was both requested and granted."""

    policy: SandboxPolicy
    env: tuple[str, ...]
    network: bool | tuple[str, ...]  # True: all; a tuple: the egress allowlist (empty: none)
    writable_paths: tuple[str, ...]
    limits: Limits
    python: str | None


def review(manifest: Manifest, grants: Grants, host_policy: SandboxPolicy) -> list[Decision]:
    """Every request of `manifest` with the operator's answer (granted, declined or excess)."""
    grant = grants.for_plugin(manifest.name)
    rows = [
        *_policy_rows(manifest, grant, host_policy),
        *_env_rows(manifest, grant),
        *_network_rows(manifest, grant),
        *_writable_rows(manifest, grant),
        *_limit_rows(manifest, grant, grants.host.limits),
        *_python_rows(manifest, grants),
    ]
    declined = set(grant.declined)
    return [
        Decision(r.label, r.requested, r.granted, "declined", r.why)
        if r.status == "excess" and r.label in declined
        else r
        for r in rows
    ]


def resolve(manifest: Manifest, grants: Grants, host_policy: SandboxPolicy) -> Effective:
    """What the plugin may run with; `NotGranted` naming every excess request otherwise."""
    decisions = review(manifest, grants, host_policy)
    excess = [d for d in decisions if d.status == "excess"]
    if excess:
        named = "; ".join(f"{d.label} ({d.why})" if d.why else d.label for d in excess)
        raise NotGranted(
            f"plugin {manifest.name!r} requests what the operator has not granted: {named}. "
            f"Grant or decline with `plugbox plugins grant {manifest.name} ...`",
            plugin=manifest.name,
            data={"excess": [d.label for d in excess]},
        )
    granted = {d.label for d in decisions if d.status == "granted"}
    grant = grants.for_plugin(manifest.name)
    requested = manifest.permissions
    network: bool | tuple[str, ...] = ()
    if requested.network is not False:
        network = True if grant.network is True else tuple(grant.network or ())
    return Effective(
        policy=effective_policy(manifest, grant, host_policy),
        env=tuple(k for k in requested.env if f"env:{k}" in granted),
        network=network,
        writable_paths=tuple(p for p in requested.writable_paths if f"writable:{p}" in granted),
        limits=_clamped(manifest.limits, _caps(grant, grants.host.limits)),
        python=manifest.python if f"python:{manifest.python}" in granted else None,
    )


def effective_policy(
    manifest: Manifest, grant: PluginGrant, host_policy: SandboxPolicy
) -> SandboxPolicy:
    """The operator's policy, made stricter (never looser) by the manifest's floor."""
    operator = SandboxPolicy(grant.policy or host_policy)
    floor = SandboxPolicy(manifest.sandbox_policy or operator)
    return floor if _STRICTNESS[floor] > _STRICTNESS[operator] else operator


def _policy_rows(
    manifest: Manifest, grant: PluginGrant, host_policy: SandboxPolicy
) -> Iterable[Decision]:
    if manifest.sandbox_policy is None:
        return
    operator = SandboxPolicy(grant.policy or host_policy)
    floor = SandboxPolicy(manifest.sandbox_policy)
    label = f"policy:{floor.value}"
    if _STRICTNESS[floor] >= _STRICTNESS[operator]:
        yield Decision(label, floor.value, operator.value, "granted", "a floor: never looser")
    else:
        why = f"looser than the operator's {operator.value!r}"
        yield Decision(label, floor.value, operator.value, "excess", why)


def _env_rows(manifest: Manifest, grant: PluginGrant) -> Iterable[Decision]:
    for key in manifest.permissions.env:
        ok = key in grant.env
        yield Decision(f"env:{key}", key, key if ok else "-", "granted" if ok else "excess")


def _network_rows(manifest: Manifest, grant: PluginGrant) -> Iterable[Decision]:
    requested = manifest.permissions.network
    if requested is True:
        ok = grant.network is True
        why = "" if ok else "all network is an operator-only grant"
        yield Decision("network:*", "all", "all" if ok else "-", "granted" if ok else "excess", why)
        return
    allowed = () if grant.network is True or grant.network is False else grant.network
    for destination in requested or ():
        ok = grant.network is True or destination in allowed
        shown = "all" if grant.network is True else (destination if ok else "-")
        status: Status = "granted" if ok else "excess"
        yield Decision(f"network:{destination}", destination, shown, status)


def _writable_rows(manifest: Manifest, grant: PluginGrant) -> Iterable[Decision]:
    for path in manifest.permissions.writable_paths:
        problem = writable_path_problem(path)
        ok = problem is None and path in grant.writable_paths
        yield Decision(
            f"writable:{path}",
            path,
            path if ok else "-",
            "granted" if ok else "excess",
            problem or "",
        )


def writable_path_problem(path: str) -> str | None:
    """Why `path` cannot be a writable sub-path of a data directory (None: it can)."""
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return "absolute: only sub-paths of the plugin's data directory can be granted"
    if ".." in pure.parts:
        return "contains '..': only sub-paths of the plugin's data directory can be granted"
    if not pure.parts or pure.parts == (".",):
        return "the data directory itself is always writable; name a sub-path"
    return None


def _limit_rows(manifest: Manifest, grant: PluginGrant, caps: LimitCaps) -> Iterable[Decision]:
    bounds = _caps(grant, caps)
    for name in CAPPED_LIMITS:
        value = getattr(manifest.limits, name)
        cap = bounds[name]
        if value > cap:
            why = f"above the operator's cap {cap}"
            yield Decision(f"limit:{name}", str(value), str(cap), "excess", why)


def _python_rows(manifest: Manifest, grants: Grants) -> Iterable[Decision]:
    if manifest.python is None:
        return
    ok = manifest.python in grants.host.interpreters
    why = "" if ok else "not an interpreter the operator allowed ([host] interpreters)"
    yield Decision(
        f"python:{manifest.python}",
        manifest.python,
        manifest.python if ok else "-",
        "granted" if ok else "excess",
        why,
    )


def _caps(grant: PluginGrant, caps: LimitCaps) -> dict[str, int | float]:
    return {name: grant.limits.get(name, getattr(caps, name)) for name in CAPPED_LIMITS}


def _clamped(limits: Limits, caps: dict[str, int | float]) -> Limits:
    # A declined limit request runs at the cap: the plugin gets what the operator allows.
    return limits.model_copy(update={n: min(getattr(limits, n), caps[n]) for n in CAPPED_LIMITS})


def validate_grant(grant: PluginGrant) -> None:
    """Refuse grants that could never be honoured (absolute paths, bad destinations, limits)."""
    unknown = set(grant.limits) - set(CAPPED_LIMITS)
    if unknown:
        raise ValueError(f"unknown limits {sorted(unknown)}; known: {list(CAPPED_LIMITS)}")
    for path in grant.writable_paths:
        problem = writable_path_problem(path)
        if problem:
            raise ValueError(f"writable path {path!r}: {problem}")
    if not isinstance(grant.network, bool):
        for destination in grant.network:
            parse_destination(destination)
