"""Benchmark helper: generate N small plugins (unique package names) in a temporary directory."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """
import os
from typing import Any

from sdk import (BaseNodeData, IntegrationNodeRegistration, IntegrationPackageSpec,
                 IntegrationRuntimeSession, NodeCategory, NodeExample, build_spec, node_spec,
                 register_package, spec_field)

TYPE = "{name}"


@node_spec(name=TYPE, display_name=TYPE, description="A benchmark node.",
           category=NodeCategory.integration, icon="Gauge",
           examples=[NodeExample(name="x", data={{"name": "x"}})])
class Node(BaseNodeData):
    enabled: bool = spec_field(True, description="On or off.")


class Counter(IntegrationRuntimeSession):
    name = TYPE

    def __init__(self) -> None:
        self.count = 0

    async def on_events(self, events: list[Any]) -> None:
        self.count += len(events)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any]:
        return {{TYPE: {{"events": self.count}}}}


def create_runtime_sessions(context: Any) -> list[Counter]:
    return [Counter()]


def handle(nodes: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    crash_pct = float(os.environ.get("BENCH_CRASH_PCT", "0"))
    draw = hash((context.workflow_run_id, TYPE)) % 10000
    if crash_pct and context.attempt == 1 and draw < crash_pct * 100:
        os._exit(13)
    return {{n["id"]: {{"node_id": n["id"], "ok": True}} for n in nodes}}


async def run_completion(nodes: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    return handle(nodes, context)


NODE = IntegrationNodeRegistration(TYPE, Node, build_spec(Node))
PACKAGE = register_package(IntegrationPackageSpec(name=TYPE, nodes=(NODE,),
                           create_runtime_sessions=create_runtime_sessions,
                           run_completion=run_completion))
"""


# A package whose session attaches an observer to the shadow task (issue #18): frames, no events.
SHADOW_SESSION = """

class Observer:
    def __init__(self) -> None:
        self.count = 0

    async def on_push_frame(self, data: Any) -> None:
        self.count += 1


class Counter(IntegrationRuntimeSession):
    name = TYPE
    subscriptions = frozenset()

    def __init__(self) -> None:
        self.observer = Observer()

    def attach(self, task: Any) -> None:
        task.add_observer(self.observer)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any]:
        return {{TYPE: {{"events": self.observer.count}}}}

"""


MANIFEST = """name = "{name}"
version = "0.0.1"
package = "{name}"

[completion]
max_attempts = 3
backoff_s = 0.01
"""


def make_plugins(
    root: Path, count: int, prefix: str = "bench", *, shadow: bool = False
) -> list[str]:
    """`shadow=True`: each plugin's session observes frames through the shadow task instead."""
    template = TEMPLATE
    if shadow:
        start, end = TEMPLATE.index("class Counter"), TEMPLATE.index("def create_runtime_sessions")
        template = TEMPLATE[:start] + SHADOW_SESSION.lstrip("\n") + "\n" + TEMPLATE[end:]
    names = []
    for index in range(count):
        name = f"{prefix}{index}"
        package = root / name / name
        package.mkdir(parents=True, exist_ok=True)
        (root / name / "plugin.toml").write_text(MANIFEST.format(name=name))
        (package / "__init__.py").write_text(template.format(name=name))
        names.append(name)
    return names
