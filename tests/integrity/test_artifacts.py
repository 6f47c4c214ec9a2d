"""Artifacts live in their plugin's namespace, checked by the store itself (any caller, any SDK),
and manifest-declared snapshot keys never reach into another plugin's namespace. A real SQLite
file; the end-to-end squatter is in `test_squatting.py`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host._keys import granted_keys
from host.store import SCHEMA_VERSION, InvalidArtifactName, SQLiteRunStore
from host.store._schema import MIGRATIONS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        ("victim", "../../../integrations/victim/xss"),
        ("victim", "a/b.html"),
        ("victim", ".hidden"),
        ("victim", ".."),
        ("victim", ""),
        ("../victim", "report.html"),
        ("", "report.html"),
        ("Victim", "report.html"),
    ],
)
async def test_the_store_refuses_a_path_or_a_foreign_owner(
    tmp_path: Path, owner: str, name: str
) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        with pytest.raises(InvalidArtifactName):
            await store.put_artifact(run_id, owner, name, "text/html", b"x")
        assert await store.list_artifacts(run_id) == []


async def test_one_plugins_artifact_never_replaces_anothers(tmp_path: Path) -> None:
    async with SQLiteRunStore(tmp_path / "r.db") as store:
        run_id = await store.create_run(workflow_definition={"nodes": []})
        await store.put_artifact(run_id, "victim", "report.html", "text/html", b"real")
        await store.put_artifact(run_id, "squatter", "report.html", "text/html", b"forged")
        await store.put_artifact(run_id, "victim", "report.html", "text/html", b"real 2")
        assert await store.get_artifact(run_id, "victim", "report.html") == ("text/html", b"real 2")
        assert await store.get_artifact(run_id, "squatter", "report.html") == (
            "text/html",
            b"forged",
        )
        assert await store.list_artifacts(run_id) == ["squatter/report.html", "victim/report.html"]


async def test_artifacts_from_before_namespacing_keep_their_bare_name(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript("".join(MIGRATIONS[:5]) + "PRAGMA user_version = 5;")
    db.execute(
        "INSERT INTO runs (organization_id, workflow_definition, created_at) VALUES (1, '{}', 0)"
    )
    db.execute("INSERT INTO artifacts VALUES (1, 'old_report.html', 'text/html', x'6f6c64')")
    db.commit()
    db.close()
    async with SQLiteRunStore(tmp_path / "old.db") as store:
        assert await store.list_artifacts(1) == ["old_report.html"]
        assert await store.get_artifact(1, "", "old_report.html") == ("text/html", b"old")
    version = sqlite3.connect(tmp_path / "old.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


def test_declared_snapshot_keys_never_reach_into_another_namespace() -> None:
    plugins = ["victim", "squatter", "call", "call_metrics"]
    declared = {
        "squatter": ["victim_stats", "summary", "shared", "plugbox_live", "victim_node"],
        "victim": ["summary_of_victim", "shared"],
        "call": ["call_metrics_report", "call_notes"],
    }
    taken = {"victim_node"}  # another plugin's node type name
    assert granted_keys("squatter", declared, plugins=plugins, taken=taken) == {"summary"}
    # `shared` is declared twice: granted to neither, until one of them stops declaring it.
    assert granted_keys("victim", declared, plugins=plugins) == {"summary_of_victim"}
    # A shorter plugin name never gets a longer one's keys by declaring them.
    assert granted_keys("call", declared, plugins=plugins) == {"call_notes"}
