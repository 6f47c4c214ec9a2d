"""CLI layer: `plugbox new NAME`, a plugin scaffolded from the contract's golden path.

Contract: the generated directory (plugin.toml, package with node, runtime, completion, and a test
written with `sdk.testing`) passes `plugbox plugins check` unchanged, so an author starts from
something green and edits from there.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class ScaffoldError(ValueError):
    """The name is not a valid plugin name, or the target directory already exists."""


def scaffold_plugin(name: str, root: Path) -> Path:
    """Write a new plugin `name` under `root`; return its directory."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use 2-40 lowercase letters, digits or _, "
            "starting with a letter (it becomes the Python package name)"
        )
    target = root / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or remove it")
    title = name.replace("_", " ").title()
    files = {
        "plugin.toml": _MANIFEST,
        f"{name}/__init__.py": _INIT,
        f"{name}/node.py": _NODE,
        f"{name}/runtime.py": _RUNTIME,
        f"{name}/completion.py": _COMPLETION,
        f"tests/test_{name}.py": _TEST,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            template.format(name=name, title=title, title_class=title.replace(" ", "")),
            encoding="utf-8",
        )
    return target


_MANIFEST = """\
# {title}: a plugbox plugin. Reference: docs/operations.md ("plugin.toml").
name = "{name}"
version = "0.1.0"
package = "{name}"
requirements = []

[permissions]
# No network unless asked for here AND granted by the operator: a plugin that calls an API lists
# its destinations, e.g. network = ["api.example.com:443"], and the operator runs
# `plugbox plugins grant {name} ...`; without both, its HTTP calls fail with ConnectError.
network = false

[completion]
phase = "integration"
max_attempts = 3
"""

_INIT = '''\
"""{title} plugin: registers its package (node, runtime collector, completion handler)."""

from sdk import IntegrationPackageSpec, register_package

from .completion import run_completion
from .node import NODE
from .runtime import create_runtime_sessions

PACKAGE = register_package(
    IntegrationPackageSpec(
        name="{name}",
        nodes=(NODE,),
        create_runtime_sessions=create_runtime_sessions,
        run_completion=run_completion,
    )
)
'''

_NODE = '''\
"""{title} plugin: the node model (source of truth) and its derived spec."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from sdk import (
    BaseNodeData,
    GraphConstraints,
    IntegrationNodeRegistration,
    NodeCategory,
    NodeExample,
    build_spec,
    node_spec,
    spec_field,
)

TYPE_NAME = "{name}"


@node_spec(
    name=TYPE_NAME,
    display_name="{title}",
    description="Describe what {title} does after each call.",
    category=NodeCategory.integration,
    icon="Plug",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    examples=[NodeExample(name="Default", data={{"name": "{title}", "api_key": "key-123456789"}})],
)
class {title_class}NodeData(BaseNodeData):
    """Configuration of one {title} node."""

    api_key: Annotated[str, StringConstraints(min_length=8)] = spec_field(
        ..., description="Credential for the service."
    )
    enabled: bool = spec_field(True, description="Turn the node off without deleting it.")


SPEC = build_spec({title_class}NodeData)
NODE = IntegrationNodeRegistration(
    type_name=TYPE_NAME,
    data_model={title_class}NodeData,
    node_spec=SPEC,
    sensitive_fields=("api_key",),
)
'''

_RUNTIME = '''\
"""{title} plugin: the live session, counting the call's turns."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationRuntimeContext, IntegrationRuntimeSession
from sdk.protocol import EventKind, LiveEvent

from .node import TYPE_NAME


class {title_class}Session(IntegrationRuntimeSession):
    """One per run; its snapshot is persisted at call end."""

    name = "{name}"
    subscriptions = frozenset({{EventKind.USER_STOPPED_SPEAKING, EventKind.BOT_STOPPED_SPEAKING}})

    def __init__(self) -> None:
        self.turns = 0

    def on_event(self, event: LiveEvent) -> None:
        self.turns += 1

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        return {{"{name}": {{"turns": self.turns}}}}


def create_runtime_sessions(context: IntegrationRuntimeContext) -> list[{title_class}Session]:
    return [{title_class}Session()] if context.enabled_nodes(TYPE_NAME) else []
'''

_COMPLETION = '''\
"""{title} plugin: the post-call completion handler."""

from __future__ import annotations

from typing import Any

from sdk import IntegrationCompletionContext

from .node import {title_class}NodeData


async def run_completion(
    nodes: list[dict[str, Any]], context: IntegrationCompletionContext
) -> dict[str, Any]:
    """Return one result per enabled node, keyed by node id."""
    snapshot = ((context.workflow_run or {{}}).get("logs") or {{}}).get("{name}") or {{}}
    results: dict[str, Any] = {{}}
    for node in nodes:
        data = {title_class}NodeData.model_validate(node.get("data", {{}}))
        if not data.enabled:
            continue
        node_id = str(node.get("id"))
        results[node_id] = {{"node_id": node_id, "turns": snapshot.get("turns", 0)}}
    return results
'''

_TEST = '''\
"""{title} plugin: the contract's testing expectations, through sdk.testing."""

from __future__ import annotations

from pathlib import Path

from sdk.testing import check_package


def test_{name}_meets_the_contract() -> None:
    check_package(Path(__file__).resolve().parents[1]).raise_for_failures()
'''
