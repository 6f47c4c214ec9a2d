"""The `plugbox` CLI and the README: every README command is run here, the demo end to end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGBOX = [sys.executable, "-m", "host.cli"]
README = (REPO / "README.md").read_text()


def plugbox(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*PLUGBOX, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_lists_exactly_the_commands_this_file_runs() -> None:
    assert readme_commands() == [
        "make demo",
        "make test",
        ".venv/bin/plugbox new acme",
        ".venv/bin/plugbox plugins check plugins/acme",
        ".venv/bin/plugbox plugins list",
        ".venv/bin/plugbox doctor",
        ".venv/bin/plugbox demo",
    ]


def test_make_demo_and_make_test_are_the_makefile_targets_the_readme_names() -> None:
    dry = subprocess.run(
        ["make", "-n", "demo", "test"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "plugbox demo" in dry.stdout
    assert "pytest" in dry.stdout


def test_new_then_check_passes_unchanged_and_list_and_doctor_run(tmp_path: Path) -> None:
    created = plugbox("new", "acme", cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    checked = plugbox("plugins", "check", "plugins/acme", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for expectation in ("node model validation", "completion happy path", "disabled-node skip"):
        assert expectation in checked.stdout
    listed = plugbox("plugins", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "acme" in listed.stdout
    assert "process" in listed.stdout  # the sandbox layers column
    doctor = plugbox("doctor", cwd=tmp_path)
    assert doctor.returncode == 0
    assert "bwrap" in doctor.stdout
    assert "acme" in doctor.stdout


def test_check_names_the_expectation_a_broken_plugin_breaks(tmp_path: Path) -> None:
    shutil.copytree(
        REPO / "tests" / "fixtures" / "bad_plugins" / "no_skip", tmp_path / "plugins" / "no_skip"
    )
    checked = plugbox("plugins", "check", "plugins/no_skip", cwd=tmp_path)
    assert checked.returncode == 1
    assert re.search(
        r"failed\s+disabled-node skip: disabled node\(s\) \['no_skip-0'\] were not skipped",
        checked.stdout,
    )


def test_errors_are_one_line_with_a_hint_and_a_documented_exit_code(tmp_path: Path) -> None:
    missing = plugbox("plugins", "check", "plugins/nothing", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout.startswith("error: ")
    assert "hint:" in missing.stdout
    bad_name = plugbox("new", "Bad-Name", cwd=tmp_path)
    assert bad_name.returncode == 2


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_shows_every_bundled_plugin(tmp_path: Path) -> None:
    done = plugbox(
        "demo",
        "--plugins",
        str(REPO / "plugins"),
        "--data-dir",
        str(tmp_path),
        cwd=tmp_path,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for plugin in ("call_metrics", "call_qa", "chat_notifier", "webhook"):
        assert plugin in out
    assert "score=100, passed=True" in out  # call_qa
    assert "delivered=True, attempts=1, status_codes=[200]" in out  # webhook
    assert "posted=True" in out  # chat_notifier
    assert "status=published" in out  # call_metrics
    assert "-> HTTP 200" in out  # the public report, fetched by token
    assert "signatures ok=1, bad=0" in out
    # webhook and chat_notifier reached the receiver only through the egress proxy
    assert re.search(r"chat_notifier allowed=[1-9]\d* denied=0, webhook allowed=[1-9]", out)
    assert "sk-demo-provider-key" not in out  # no secret in the demo output
