"""The layering the docs draw, checked on the source: import picture, SDK surface, public faces."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / "host"
FACES = (
    "sdk",
    "sdk.protocol",
    "sdk.testing",
    "host",
    "host.api",
    "host.cli",
    "host.client",
    "host.completion",
    "host.runtime",
    "host.sandbox",
    "host.testing",
)
CALLERS = ("runtime", "completion", "api")  # they talk to plugins only through host.client


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """Modules `path` imports when it runs (imports under `if TYPE_CHECKING:` left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def host_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in HOST.rglob("*.py")}
    return {
        name: {target for target in runtime_imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_the_host_import_picture_has_no_cycle() -> None:
    graph = host_graph()
    # A package imports its own private modules to re-export them: that edge is not a cycle.
    edges = {name: {t for t in out if not t.startswith(name + ".")} for name, out in graph.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(edges[node]):
            visit(target, [*path, node])
        done.add(node)

    for name in sorted(edges):
        visit(name, [])


def test_runtime_and_completion_sit_side_by_side() -> None:
    for name, targets in host_graph().items():
        if name.startswith("host.runtime"):
            assert not any(t.startswith("host.completion") for t in targets), name
        if name.startswith("host.completion"):
            assert not any(t.startswith("host.runtime") for t in targets), name


def test_only_the_client_builds_params_for_plugin_methods() -> None:
    import sdk.protocol

    params = {
        name
        for name in sdk.protocol.__all__
        if name.endswith(("Params", "ContextWire"))
        and not issubclass(getattr(sdk.protocol, name), Exception)  # InvalidParams is an error
    }
    for layer in CALLERS:
        for path in (HOST / layer).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id in params:
                    pytest.fail(f"{path.relative_to(REPO)} builds {node.id}: that is the client's")
                if isinstance(node, ast.Attribute) and node.attr in {"call", "notify"}:
                    pytest.fail(f"{path.relative_to(REPO)} calls a plugin below its client")


def test_the_host_imports_nothing_of_the_sdk_but_the_wire_and_the_testing_helpers() -> None:
    for path in HOST.rglob("*.py"):
        for target in runtime_imports(path):
            if target == "sdk" or target.startswith("sdk."):
                allowed = target.startswith(("sdk.protocol", "sdk.testing"))
                assert allowed, f"{path.relative_to(REPO)} imports {target}"


def test_importing_the_wire_package_loads_neither_pydantic_nor_the_authoring_layer() -> None:
    probe = (
        "import sys, sdk.protocol; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {'pydantic', 'sdk'})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.startswith("pydantic")]
    assert {m for m in loaded if m.startswith("sdk")} <= {"sdk"} | {
        m for m in loaded if m.startswith("sdk.protocol")
    }


@pytest.mark.parametrize("face", FACES)
def test_each_public_face_exports_exactly_its_all(face: str) -> None:
    module = importlib.import_module(face)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported), f"{face}.__all__ repeats a name"
    for name in exported:
        assert getattr(module, name, None) is not None, f"{face}.{name} does not resolve"
    public = {
        name
        for name in dir(module)
        if not name.startswith("_")
        and type(getattr(module, name)).__name__ != "module"
        and name not in {"annotations", "TYPE_CHECKING"}
    }
    assert public == set(exported), f"{face}: public names outside __all__ or missing"
