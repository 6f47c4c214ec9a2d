"""CLI layer: `plugbox plugins list|spec|check|install|lock|grant`.

Contract: `list` starts a host (no plugin process) to show each plugin's version, node types,
state, sandbox layers (or why its grants refuse it) and venv, then every broken plugin; `spec`
prints a loaded plugin's package spec as JSON; `check` runs the contract's testing expectations
against one plugin in its sandbox (exit 1 when one fails); `install` shows what each plugin
requests against what is granted, records the operator's approval and builds the venvs (a
refused plugin: exit 1); `lock` writes a hashed `requirements.lock` beside a plugin; `grant`
edits the operator's grants for one plugin. Every plugin-supplied string is escaped: a plugin
cannot style or forge output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sdk.protocol import PluginError

from .._host import PluginHost
from .._manifest import Manifest, discover
from .._registry import PackageInfo
from ..sandbox import SandboxPolicy, layers_for
from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    DataDir,
    GrantsFile,
    PluginsRoot,
    Policy,
    console,
    host_config,
    run,
)
from ._ops import data_dir_outside


def _types_cell(info: PackageInfo) -> str:
    """Served types, then declared but unserved ones in red (contested, or pinned elsewhere)."""
    cells = [escape(t) for t in info.type_names]
    cells += [f"[red]{escape(t)} (not served)[/red]" for t in sorted(info.unserved)]
    return ", ".join(cells)


def list_plugins(
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Name, version, node types, state, sandbox layers and venv of every plugin."""

    async def work() -> None:
        async with PluginHost(host_config(plugins, data_dir, policy, grants)) as host:
            await host.registry.refresh()
            table = Table()
            for column in ("name", "version", "node types", "phase", "state", "sandbox", "venv"):
                table.add_column(column)
            for name, manifest in host.manifests.items():
                info = host.registry.get_package(name)
                types = _types_cell(info) if info else "[red]spec failed[/red]"
                venv = host.venvs.root / host.venvs.key_for(manifest)
                try:
                    granted = host.effective(manifest).policy
                    layers = ", ".join(layers_for(granted, name=name)) or "none (policy off)"
                except PluginError as refused:
                    layers = f"[red]refused: {escape(refused.message)}[/red]"
                table.add_row(
                    escape(name),
                    escape(manifest.version),
                    types,
                    escape(manifest.completion.phase),
                    host.get(name).state.value,
                    layers,
                    escape(str(venv)),
                )
            console.print(table)
            for error in [*host.discovery_errors, *host.registry.errors]:
                console.print(f"[red]broken:[/red] {escape(str(error))}")

    run(work)


def plugin_spec(
    name: str, plugins: PluginsRoot = Path("plugins"), data_dir: DataDir = Path(".plugbox")
) -> None:
    """The plugin's package spec as JSON."""

    async def work() -> None:
        async with PluginHost(host_config(plugins, data_dir)) as host:
            await host.registry.refresh()
            info = host.registry.get_package(name)
            if info is None:
                raise KeyError(f"no loaded plugin named {name!r}")
            sys.stdout.write(json.dumps([n.spec for n in info.spec.nodes], indent=2) + "\n")

    run(work, hint="`plugbox plugins list` shows the plugins and their errors")


def check(path: Path, data_dir: DataDir = Path(".plugbox")) -> None:
    """Run the contract's testing expectations against the plugin in PATH (in its sandbox)."""
    from sdk.testing import check_plugin

    from ..client import CheckCaller

    target = path.resolve()
    root = target.parent
    data_dir = data_dir_outside(data_dir, target)  # never inside the plugin's folder

    async def work() -> bool:
        progress = lambda m: console.print(escape(f"  {m}"))  # noqa: E731 - venv build steps
        async with PluginHost(host_config(root, data_dir), progress=progress) as host:
            name = next((n for n, m in host.manifests.items() if m.directory == target), None)
            if name is None:
                problems = [str(e) for e in host.discovery_errors if e.path.parent == target]
                raise ValueError(
                    f"{path} is not a valid plugin: {'; '.join(problems) or 'no plugin.toml'}"
                )
            report = await check_plugin(CheckCaller(host.client(name)))
            for expectation in report.expectations:
                colour = {
                    "passed": "green",
                    "failed": "red",
                    "skipped": "yellow",
                    "warning": "yellow",
                }[expectation.status]
                line = escape(f"{expectation.name}: {expectation.message}")
                console.print(f"[{colour}]{expectation.status:>7}[/{colour}]  {line}")
            return report.ok

    if not run(work, hint="fix the expectation named above, then run the check again"):
        raise typer.Exit(EXIT_FAILED)


def install(
    path: Annotated[
        Path | None, typer.Argument(help="One plugin folder (default: every plugin).")
    ] = None,
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
    yes: Annotated[bool, typer.Option("--yes", help="Approve without asking.")] = False,
) -> None:
    """Show what each plugin requests vs what is granted, record approval, build its venv."""
    from .._grants import GRANTS_FILE

    root = path.resolve().parent if path else plugins
    grants_path = grants or data_dir / GRANTS_FILE
    config = host_config(root, data_dir, policy, grants_path)
    found = discover(root)
    chosen = [m for m in found.manifests.values() if path is None or m.directory == path.resolve()]
    if path is not None and not chosen:
        problems = [str(e) for e in found.errors if e.path.parent == path.resolve()]
        console.print(
            f"[red]error:[/red] {escape(str(path))} is not a valid plugin: "
            f"{escape('; '.join(problems) or 'no plugin.toml')}"
        )
        raise typer.Exit(EXIT_FAILED)
    refused = _approve(chosen, grants_path, policy, yes=yes)

    async def work() -> None:
        async with PluginHost(config, progress=lambda m: console.print(f"  {escape(m)}")) as host:
            for manifest in (m for m in chosen if m.name not in refused):
                venv = await host.ensure_venv(manifest)
                state = "built" if venv.built else "reused"
                console.print(f"{escape(manifest.name)}: {venv.path} ({state})")

    run(work, hint="the installer's output is in the error above")
    if refused:
        raise typer.Exit(EXIT_FAILED)


def _approve(
    chosen: list[Manifest], grants_path: Path, policy: SandboxPolicy, *, yes: bool
) -> list[str]:
    """Show each plugin's requests against its grants; record the operator's approval of what
    exceeds them (asked, unless `yes`). The names of the plugins not approved."""
    from .._grants import load_grants, review, save_grants
    from ._permissions import approve_requested, decisions_table

    current = load_grants(grants_path)
    refused: list[str] = []
    for manifest in chosen:
        decisions = review(manifest, current, policy)
        console.print(decisions_table(manifest, decisions))
        if any(d.status == "excess" for d in decisions):
            if yes or typer.confirm(f"Grant {manifest.name} what it requests?", default=False):
                current = approve_requested(manifest, current, policy)
                save_grants(current, grants_path)
                console.print(decisions_table(manifest, review(manifest, current, policy)))
                console.print(f"recorded in {grants_path}")
            else:
                refused.append(manifest.name)
                console.print(f"[yellow]{escape(manifest.name)} not approved: it will not start")
    return refused


def lock(path: Annotated[Path, typer.Argument(help="The plugin folder.")]) -> None:
    """Resolve the plugin's requirements (sandboxed) into a hashed requirements.lock beside it."""
    from .._lock import uv_executable, write_lock
    from .._manifest import ManifestError, load_manifest
    from .._venv import base_interpreter, sdk_requirements, uv_cache_dir

    uv = uv_executable()
    try:
        manifest = load_manifest(path)
        if uv is None:
            raise ValueError("locking needs uv (pip install uv)")
        target = write_lock(
            manifest,
            sdk_requirements=sdk_requirements(),
            python=manifest.python or str(base_interpreter()),
            uv=uv,
            cache_dir=uv_cache_dir(),
        )
    except (ManifestError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None
    pins = [line for line in target.read_text().splitlines() if "==" in line]
    console.print(f"wrote {escape(str(target))}: {len(pins)} pinned, hashed requirements")


def grant(
    name: str,
    env: Annotated[list[str] | None, typer.Option("--env", help="Grant an env key.")] = None,
    network: Annotated[
        list[str] | None,
        typer.Option("--network", help="Grant a destination host:port (`all`: all network)."),
    ] = None,
    writable: Annotated[
        list[str] | None, typer.Option("--writable", help="Grant a data-dir sub-path.")
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option("--limit", help="Raise a cap: NAME=INT.")
    ] = None,
    decline: Annotated[
        list[str] | None, typer.Option("--decline", help="Decline a request by label.")
    ] = None,
    revoke: Annotated[
        list[str] | None, typer.Option("--revoke", help="Remove a grant by label.")
    ] = None,
    plugin_policy: Annotated[
        SandboxPolicy | None,
        typer.Option("--plugin-policy", help="The operator's policy for this plugin."),
    ] = None,
    node_type: Annotated[
        list[str] | None,
        typer.Option("--node-type", help="Pin a node type two plugins declare to this one."),
    ] = None,
    plugins: PluginsRoot = Path("plugins"),
    data_dir: DataDir = Path(".plugbox"),
    policy: Policy = SandboxPolicy.standard,
    grants: GrantsFile = None,
) -> None:
    """Change what the operator grants plugin NAME, then show requested vs granted."""
    from .._grants import GRANTS_FILE, load_grants, review, save_grants
    from ._permissions import decisions_table, edit_grant

    grants_path = grants or data_dir / GRANTS_FILE
    try:
        current = load_grants(grants_path)
        updated = edit_grant(
            current.for_plugin(name),
            env=env or (),
            network=network or (),
            writable=writable or (),
            limits=limit or (),
            decline=decline or (),
            revoke=revoke or (),
            policy=plugin_policy.value if plugin_policy else None,
            node_types=node_type or (),
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    current = current.with_plugin(name, updated)
    save_grants(current, grants_path)
    manifest = discover(plugins).manifests.get(name)
    if manifest is not None:
        console.print(decisions_table(manifest, review(manifest, current, policy)))
    console.print(f"recorded in {grants_path}")
