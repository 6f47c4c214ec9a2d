"""An author's loop on a freshly scaffolded plugin with a PyPI requirement: `plugbox dev` runs it
end to end, `plugbox plugins test` runs its own tests in its own venv, and nothing lands inside
the plugin's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._helpers import plugbox

pytestmark = pytest.mark.slow
PHONE_TEST = """

def test_the_requirement_is_importable_in_the_plugins_venv() -> None:
    import phonenumbers

    assert phonenumbers.parse("+14155550100").country_code == 1
"""


@pytest.fixture
def acme(tmp_path: Path) -> Path:
    created = plugbox("new", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    plugin = tmp_path / "plugins" / "acme"
    manifest = plugin / "plugin.toml"
    text = manifest.read_text()
    assert "plugbox plugins grant acme" in text  # the scaffold says how network is granted
    manifest.write_text(text.replace("requirements = []", 'requirements = ["phonenumbers"]'))
    with (plugin / "tests" / "test_acme.py").open("a") as stream:
        stream.write(PHONE_TEST)
    return plugin


def test_dev_prints_the_snapshot_and_the_completion_result(acme: Path) -> None:
    ran = plugbox("dev", "plugins/acme", "--once", cwd=acme.parents[1], timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout
    assert "acme: installing" in out  # progress while the venv builds
    assert '== runtime.finish (snapshot)\n{\n  "acme": {\n    "turns": 8' in out
    assert '"status": "done"' in out
    assert '"acme-1": {\n      "node_id": "acme-1",\n      "turns": 8' in out
    assert not (acme / ".plugbox").exists()


def test_plugins_test_runs_the_plugins_tests_in_its_venv_from_anywhere(acme: Path) -> None:
    ran = plugbox("plugins", "test", ".", cwd=acme, timeout=300)  # from inside the plugin
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 passed" in ran.stdout
    assert not (acme / ".plugbox").exists()  # the data dir is beside the plugins root
    assert (acme.parents[1] / ".plugbox" / "test-venvs").is_dir()
    checked = plugbox("plugins", "check", ".", cwd=acme, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not (acme / ".plugbox").exists()
    broken = acme / "tests" / "test_acme.py"
    broken.write_text(broken.read_text() + "\n\ndef test_fails() -> None:\n    assert False\n")
    failed = plugbox("plugins", "test", "plugins/acme", cwd=acme.parents[1], timeout=300)
    assert failed.returncode == 1
    assert "1 failed, 2 passed" in failed.stdout
