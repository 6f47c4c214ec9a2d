"""CLI layer: `plugbox dev PATH` — an author's run loop for one plugin, end to end.

Contract: `dev_once` starts the plugin in PATH the way production does (its venv, its sandbox),
loads its spec, builds a workflow of its node types from their first examples (or reads
`--definition`, a JSON `{"nodes": [...]}`), runs a scripted voice call through a real pipecat
worker with the plugin's live session attached, persists the call-finish snapshot, runs post-call
completion, and prints what each step returned. `watch` repeats it whenever a file of the plugin
changes. The run store is `<data>/dev-runs.sqlite3`, apart from the real one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._host import HostConfig, PluginHost
from .sandbox import SandboxPolicy

if TYPE_CHECKING:
    from .store import RunStore

Say = Callable[[str, Any], None]
WATCH_POLL_S = 0.5  # how often the plugin's files are looked at for a change


def example_definition(plugins: PluginHost, name: str) -> dict[str, Any]:
    """One node per node type of plugin `name`, with the data of the type's first example."""
    info = plugins.registry.get_package(name)
    nodes = []
    for node in info.spec.nodes if info is not None else []:
        examples = node.spec.get("examples") or [{}]
        data = dict(examples[0].get("data") or {})
        data.setdefault("name", f"{node.type_name}-1")
        nodes.append({"id": f"{node.type_name}-1", "type": node.type_name, "data": data})
    return {"nodes": nodes}


async def dev_once(
    plugin_dir: Path,  # absolute
    data_dir: Path,
    say: Say,
    *,
    definition: dict[str, Any] | None = None,
    policy: SandboxPolicy = SandboxPolicy.standard,
) -> bool:
    """One end-to-end run of the plugin in `plugin_dir`; True when every step succeeded."""
    from .completion import SQLiteRunStore

    config = HostConfig(plugins_root=plugin_dir.parent, data_dir=data_dir, sandbox_policy=policy)
    async with (
        PluginHost(config, progress=lambda m: say("venv", m)) as plugins,
        SQLiteRunStore(data_dir / "dev-runs.sqlite3") as store,
    ):
        name = plugin_name(plugins, plugin_dir)
        if not await load_spec(plugins, name, say):
            return False
        graph = definition or example_definition(plugins, name)
        say("definition", graph)
        run_id = await store.create_run(workflow_definition=graph)
        call_ok = await run_call(plugins, store, run_id, graph, say)
        completion_ok = await run_completion(plugins, store, run_id, say)
        for record in plugins.logs.errors(name):
            say("plugin error log", record)
        return call_ok and completion_ok


def plugin_name(plugins: PluginHost, plugin_dir: Path) -> str:
    """The name the host discovered the plugin in `plugin_dir` under.

    Raises ValueError, listing the discovery errors, when the directory is not a valid plugin.
    """
    name = next((n for n, m in plugins.manifests.items() if m.directory == plugin_dir), None)
    if name is None:
        problems = [str(e) for e in plugins.discovery_errors if e.path.parent == plugin_dir]
        raise ValueError(f"{plugin_dir} is not a valid plugin: {'; '.join(problems)}")
    return name


async def load_spec(plugins: PluginHost, name: str, say: Say) -> bool:
    """Start the plugin and read its spec; False (after printing why) when it has none."""
    await plugins.registry.refresh()
    info = plugins.registry.get_package(name)
    if info is None:
        say("spec", [str(e) for e in plugins.registry.errors if name in str(e)])
        return False
    say("spec", {"plugin": name, "node_types": info.type_names})
    return True


async def run_call(
    plugins: PluginHost, store: RunStore, run_id: int, graph: dict[str, Any], say: Say
) -> bool:
    """The scripted voice call with the plugin's live sessions attached, then its finish snapshot.

    True when every session opened (or there was none to open).
    """
    # Imported here, not at the top: plugbox_demo is not part of the host and pulls in pipecat.
    from plugbox_demo.scripted_call import run_scripted_call

    from .runtime import IntegrationRuntimeContext, finish_call, open_call

    nodes = {str(node["id"]): node for node in graph.get("nodes", [])}
    context = IntegrationRuntimeContext(run_id, workflow_graph={"nodes": nodes})
    async with open_call(context, plugins=plugins) as sessions:
        if not sessions:
            return True

        def attach(worker: Any) -> None:
            for session in sessions:
                session.attach(worker)

        gathered = await run_scripted_call(attach=attach)
        snapshot = await finish_call(
            sessions, gathered_context=gathered, store=store, run_id=run_id
        )
        say("runtime.finish (snapshot)", snapshot)
        return all(s.open_error is None for s in sessions)


async def run_completion(plugins: PluginHost, store: RunStore, run_id: int, say: Say) -> bool:
    """Post-call completion of the run; True when every integration ended done or skipped."""
    from .completion import run_integrations

    report = await run_integrations(run_id, plugins=plugins, store=store)
    run = await store.get_run(run_id)
    ok = True
    for outcome in report.outcomes:
        say(
            "completion.run",
            {
                "plugin": outcome.plugin,
                "status": outcome.status,
                "attempts": outcome.attempts,
                "error": outcome.error,
                "result": run.annotations if run else {},
            },
        )
        ok = ok and outcome.status in {"done", "skipped"}
    return ok


def fingerprint(directory: Path) -> tuple[tuple[str, float], ...]:
    """Every file of the plugin with its modification time (caches and tests aside)."""
    return tuple(
        sorted(
            (str(path), path.stat().st_mtime)
            for path in directory.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and ".plugbox" not in path.parts
        )
    )


def wait_for_change(directory: Path, since: tuple[tuple[str, float], ...]) -> None:
    while fingerprint(directory) == since:
        time.sleep(WATCH_POLL_S)


def print_step(step: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    print(f"== {step}\n{text}", flush=True)
