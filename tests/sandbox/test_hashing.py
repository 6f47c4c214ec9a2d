"""Hashing a plugin folder never follows a symlink out of it (issue #14: as root it read
/etc/shadow, and a link to a 300 MB file cost 337 MB of RSS)."""

from __future__ import annotations

from pathlib import Path

from host._manifest import load_manifest


def test_symlinks_out_of_the_plugin_folder_are_neither_read_nor_hashed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "tree").mkdir(parents=True)
    secret = outside / "secret.txt"
    secret.write_text("first")
    (outside / "tree" / "deep.txt").write_text("first")
    plugin = tmp_path / "plugin"
    (plugin / "linky").mkdir(parents=True)
    (plugin / "plugin.toml").write_text('name = "linky"\npackage = "linky"\n')
    (plugin / "linky" / "__init__.py").write_text("")
    (plugin / "linky" / "shadow").symlink_to(secret)
    (plugin / "linky" / "tree").symlink_to(outside / "tree", target_is_directory=True)
    manifest = load_manifest(plugin)
    before = manifest.source_hash()
    secret.write_text("changed")
    (outside / "tree" / "deep.txt").write_text("changed")
    assert manifest.source_hash() == before  # the targets' contents play no part
    (plugin / "linky" / "__init__.py").write_text("x = 1\n")
    assert manifest.source_hash() != before  # while the plugin's own files do
