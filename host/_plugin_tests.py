"""CLI layer: `plugbox plugins test PATH` — a plugin's own pytest suite, run in its own venv.

Contract: the plugin's tests run with the interpreter of a test venv holding exactly what the
plugin's venv holds (the SDK, its dependencies, the plugin's requirements) plus pytest, so a test
importing the plugin's PyPI dependencies works, and nothing of the host is importable. The test
venv is keyed and reused like a plugin venv (`<data>/test-venvs/`). pytest runs with the plugin
folder as its root and a config of its own (never the host repository's), and its exit code is
the command's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ._manifest import Manifest
from ._venv import Progress, VenvBuilder

TEST_REQUIREMENTS = ("pytest>=8",)
# The plugin's suite gets pytest's defaults and warnings as errors, like the host's own.
_PYTEST_INI = "[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings =\n    error\n"


def with_test_requirements(manifest: Manifest) -> Manifest:
    """The plugin's manifest with pytest added to its requirements (its lock does not apply)."""
    return manifest.model_copy(
        update={"requirements": (*manifest.requirements, *TEST_REQUIREMENTS)}
    )


def run_plugin_tests(
    manifest: Manifest, data_dir: Path, *, progress: Progress, extra_args: list[str]
) -> int:
    """Build (or reuse) the test venv and run pytest on the plugin's `tests/`; its exit code."""
    builder = VenvBuilder(data_dir / "test-venvs", progress=progress)
    venv = builder.ensure_sync(with_test_requirements(manifest))
    ini = data_dir / "plugin-tests.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(_PYTEST_INI)
    directory = manifest.directory
    tests = directory / "tests"
    command = [str(venv.python), "-m", "pytest", "-q", "-c", str(ini), "--rootdir", str(directory)]
    command += [*extra_args, str(tests if tests.is_dir() else directory)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = str(directory)  # the plugin's package, importable as in its sandbox
    return subprocess.run(command, cwd=directory, env=env, check=False).returncode
