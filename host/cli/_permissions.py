"""CLI layer: the operator's side of permissions — review tables and grant edits.

Contract: `decisions_table(manifest, decisions)` is the rich table `plugins install` and
`plugins grant` print (every plugin-supplied string escaped: a manifest cannot style or forge
rows); `approve_requested(manifest, grants, policy)` is the operator approving a plugin as it
asks, where that is grantable (a looser policy, an invalid path, an interpreter the operator did
not allow or a limit above the cap are declined instead: those need an explicit `grant`);
`edit_grant(...)` applies `plugins grant` options to one plugin's entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from .._grants import (
    CAPPED_LIMITS,
    Decision,
    Grants,
    PluginGrant,
    review,
    writable_path_problem,
)
from .._manifest import Manifest, SandboxPolicyName
from ..sandbox import SandboxPolicy

_COLOUR = {"granted": "green", "declined": "yellow", "excess": "red"}


def decisions_table(manifest: Manifest, decisions: Sequence[Decision]) -> Table:
    table = Table(title=f"{escape(manifest.name)} {escape(manifest.version)}: requested vs granted")
    for column in ("request", "requested", "granted", "status", "why"):
        table.add_column(column)
    if not decisions:
        table.add_row("(nothing)", "-", "-", "[green]nothing to grant[/green]", "")
    for d in decisions:
        colour = _COLOUR[d.status]
        status = "NOT GRANTED" if d.status == "excess" else d.status
        table.add_row(
            escape(d.label),
            escape(d.requested),
            escape(d.granted),
            f"[{colour}]{status}[/{colour}]",
            escape(d.why),
        )
    return table


def approve_requested(manifest: Manifest, grants: Grants, policy: SandboxPolicy) -> Grants:
    """Grant what `manifest` requests where grantable; decline the rest (recorded, visible)."""
    current = grants.for_plugin(manifest.name)
    asked = manifest.permissions
    network: bool | tuple[str, ...] = current.network
    if asked.network is True:
        network = True
    elif asked.network:
        already = () if isinstance(current.network, bool) else current.network
        network = current.network if current.network is True else _union(already, asked.network)
    writable = [p for p in asked.writable_paths if writable_path_problem(p) is None]
    grant = current.model_copy(
        update={
            "env": _union(current.env, asked.env),
            "network": network,
            "writable_paths": _union(current.writable_paths, writable),
        }
    )
    updated = grants.with_plugin(manifest.name, grant)
    still = [d.label for d in review(manifest, updated, policy) if d.status == "excess"]
    if still:
        grant = grant.model_copy(update={"declined": _union(grant.declined, still)})
        updated = grants.with_plugin(manifest.name, grant)
    return updated


def edit_grant(
    grant: PluginGrant,
    *,
    env: Sequence[str] = (),
    network: Sequence[str] = (),
    writable: Sequence[str] = (),
    limits: Sequence[str] = (),
    decline: Sequence[str] = (),
    revoke: Sequence[str] = (),
    policy: SandboxPolicyName | None = None,
    node_types: Sequence[str] = (),
) -> PluginGrant:
    """`plugins grant` options applied to one entry (`--network all` grants all network).

    Revocations apply first, so `--revoke network:* --network host:443` narrows a grant.
    """
    grant = _revoked(grant, revoke) if revoke else grant
    current_net: bool | tuple[str, ...] = grant.network
    if "all" in network:
        current_net = True
    elif network:
        base = () if isinstance(current_net, bool) else current_net
        current_net = _union(base, network)
    caps = dict(grant.limits)
    for item in limits:
        name, sep, value = item.partition("=")
        if not sep or name not in CAPPED_LIMITS or not value.isdigit():
            raise ValueError(f"--limit {item!r}: expected NAME=INT, NAME one of {CAPPED_LIMITS}")
        caps[name] = int(value)
    return PluginGrant(
        policy=policy or grant.policy,
        env=_union(grant.env, env),
        network=current_net,
        writable_paths=_union(grant.writable_paths, writable),
        limits=caps,
        declined=_union(grant.declined, decline),
        node_types=_union(grant.node_types, node_types),
        reference_routes=grant.reference_routes,
        request_headers=grant.request_headers,
    )


def _revoked(grant: PluginGrant, labels: Sequence[str]) -> PluginGrant:
    """Remove granted items or declines by label (`env:K`, `network:D`, `network:*`, ...)."""
    gone = set(labels)
    network: bool | tuple[str, ...] = grant.network
    if "network:*" in gone and network is True:
        network = False
    elif not isinstance(network, bool):
        network = tuple(d for d in network if f"network:{d}" not in gone)
    return PluginGrant(
        policy=None if f"policy:{grant.policy}" in gone else grant.policy,
        env=tuple(k for k in grant.env if f"env:{k}" not in gone),
        network=network,
        writable_paths=tuple(p for p in grant.writable_paths if f"writable:{p}" not in gone),
        limits={k: v for k, v in grant.limits.items() if f"limit:{k}" not in gone},
        declined=tuple(d for d in grant.declined if d not in gone),
        node_types=tuple(t for t in grant.node_types if f"node_type:{t}" not in gone),
        reference_routes=grant.reference_routes,
        request_headers=grant.request_headers,
    )


def _union(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))
