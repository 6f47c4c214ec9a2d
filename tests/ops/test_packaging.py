"""Packaging and configuration: the console script, markup-safe output, PLUGBOX_* settings, the
platform-facing imports, the licence."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import host
from host._settings import ENV, Settings

from ._helpers import REPO, plugbox

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _broken_plugin(root: Path, name: str, extra_line: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "plugin.toml").write_text(
        f'name = "{name}"\nversion = "0.1.0"\npackage = "{name}"\n{extra_line}\n'
    )


def test_plugin_text_is_printed_as_text_never_as_markup(tmp_path: Path) -> None:
    _broken_plugin(tmp_path / "plugins", "closing", '"[/x]" = 1')
    _broken_plugin(tmp_path / "plugins", "phone", "phone = 2")
    checked = plugbox("plugins", "check", "plugins/closing", cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    assert "[[/x]]: Extra inputs are not permitted" in checked.stdout
    listed = plugbox("plugins", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "[phone]: Extra inputs are not permitted" in listed.stdout
    assert "[[/x]]" in listed.stdout


def test_the_console_script_names_the_host_extra_when_typer_is_missing() -> None:
    assert PYPROJECT["project"]["scripts"]["plugbox"] == "host._entry:main"
    code = "import sys; sys.modules['typer'] = None\nfrom host._entry import main; main()"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "plugbox: the command needs the host extra (typer is not installed): "
        "pip install 'plugbox[host]'"
    )


def test_settings_come_from_plugbox_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLUGBOX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PLUGBOX_LOG_LEVEL", "warning")
    monkeypatch.setenv("PLUGBOX_LOG_FORMAT", "JSON")
    settings = Settings()
    assert (settings.data_dir, settings.log_level, settings.log_format) == (
        tmp_path,
        "WARNING",
        "json",
    )
    monkeypatch.setenv("PLUGBOX_PORT", "not a port")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_the_cli_reads_the_same_variables(tmp_path: Path) -> None:
    _broken_plugin(tmp_path / "elsewhere", "phone", "phone = 2")
    listed = plugbox("plugins", "list", cwd=tmp_path, env={"PLUGBOX_PLUGINS": "elsewhere"})
    assert "elsewhere/phone/plugin.toml [phone]" in listed.stdout
    bad = plugbox("doctor", cwd=tmp_path, env={"PLUGBOX_LOG_LEVEL": "loud"})
    assert bad.returncode == 2
    assert "PLUGBOX_LOG_LEVEL" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_the_operations_doc_has_one_row_per_setting() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    rows = set(re.findall(r"^\| `(PLUGBOX_[A-Z_]+)` \|", doc, flags=re.M))
    assert rows == set(ENV.values())


def test_the_platform_calls_are_importable_from_host() -> None:
    from host.completion._arq import enqueue_run_integrations as on_arq
    from host.runtime import finish_call, open_call

    assert host.open_call is open_call
    assert host.finish_call is finish_call
    assert host.enqueue_run_integrations.__doc__ == on_arq.__doc__
    assert set(host.__all__) >= {"open_call", "finish_call", "create_app"}
    with pytest.raises(AttributeError):
        _ = host.no_such_name


def test_licence_and_metadata_agree() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
