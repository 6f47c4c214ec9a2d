"""Installs: PEP 508 requirements only, built in the sandbox, locked with hashes.

The hostile packages are built here, in the test: an sdist whose setup.py writes a marker on the
host and reads a host secret, and a plain wheel carrying a `.pth` that does the same whenever the
venv's interpreter starts (the build's compileall step included). Both record what they saw
inside the venv, which proves they ran; neither reaches the host or sees the secret.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from host._lock import LOCK_FILE, uv_executable, write_lock
from host._manifest import ManifestError, load_manifest
from host._venv import VenvBuilder, VenvBuildError, base_interpreter, sdk_requirements, uv_cache_dir
from host.sandbox import probe_layers

SECRET = "build-secret-value-71c3"
LAYERS = {layer.name: layer for layer in probe_layers()}
needs_bwrap = pytest.mark.skipif(
    not LAYERS["bwrap"].available, reason=f"bubblewrap layer unavailable: {LAYERS['bwrap'].detail}"
)


def plugin(root: Path, requirements: list[str], name: str = "builder") -> Path:
    directory = root / name
    (directory / name).mkdir(parents=True, exist_ok=True)
    quoted = ", ".join(json.dumps(r) for r in requirements)
    (directory / "plugin.toml").write_text(
        f'name = "{name}"\npackage = "{name}"\nrequirements = [{quoted}]\n'
    )
    (directory / name / "__init__.py").write_text("")
    return directory


@pytest.mark.parametrize(
    "requirement",
    [
        "--target=/x",
        "-r /etc/passwd",
        "-r/etc/passwd",
        "evil @ file:///tmp/evil-1.0.tar.gz",
        "-e .",
        "--index-url=http://example.invalid/simple",
        "six; import os",
    ],
)
def test_anything_but_a_pep_508_requirement_from_the_index_is_refused(
    tmp_path: Path, requirement: str
) -> None:
    with pytest.raises(ManifestError) as refused:
        load_manifest(plugin(tmp_path, [requirement]))
    assert refused.value.error.key.startswith("requirements")


def _sdist(wheelhouse: Path, marker: Path) -> None:
    setup = textwrap.dedent(
        f"""
        import os
        from setuptools import setup

        seen = {{"secret": os.environ.get("PLUGBOX_TEST_BUILD_SECRET"), "marker": False}}
        status = open("/proc/self/status").read().splitlines()
        seen["caps"] = [l for l in status if l.startswith("CapEff")][0].split()[1]
        try:
            with open({str(marker)!r}, "w") as stream:
                stream.write("pwned by setup.py")
            seen["marker"] = True
        except OSError:
            pass
        with open("plugbox_evil_sdist_seen.py", "w") as stream:
            stream.write("SEEN = " + repr(seen) + "\\n")
        setup(name="plugbox-evil-sdist", version="1.0", py_modules=["plugbox_evil_sdist_seen"])
        """
    )
    pkg_info = "Metadata-Version: 2.1\nName: plugbox-evil-sdist\nVersion: 1.0\n"
    with tarfile.open(wheelhouse / "plugbox_evil_sdist-1.0.tar.gz", "w:gz") as archive:
        for name, text in (("setup.py", setup), ("PKG-INFO", pkg_info)):
            data = text.encode()
            info = tarfile.TarInfo(f"plugbox_evil_sdist-1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _pth_wheel(wheelhouse: Path, marker: Path) -> None:
    line = (
        "import os, sys; exec("
        + repr(
            "try:\n"
            f"    open({str(marker)!r}, 'w').write('pwned by .pth')\n"
            "except OSError:\n    pass\n"
            "try:\n"
            "    open(os.path.join(sys.prefix, 'pth-seen.txt'), 'a').write("
            "repr(os.environ.get('PLUGBOX_TEST_BUILD_SECRET')) + '\\n')\n"
            "except OSError:\n    pass\n"
        )
        + ")\n"
    )
    dist = "plugbox_evil_pth-1.0.dist-info"
    files = {
        "plugbox_evil_pth.pth": line,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: plugbox-evil-pth\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(wheelhouse / "plugbox_evil_pth-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)


@needs_bwrap
def test_hostile_sdist_and_pth_wheel_build_in_the_sandbox_without_reaching_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    sdist_marker, pth_marker = tmp_path / "sdist-marker", tmp_path / "pth-marker"
    _sdist(wheelhouse, sdist_marker)
    _pth_wheel(wheelhouse, pth_marker)
    monkeypatch.setenv("PLUGBOX_TEST_BUILD_SECRET", SECRET)
    monkeypatch.setenv("UV_FIND_LINKS", str(wheelhouse))  # the operator's index settings
    manifest = load_manifest(plugin(tmp_path, ["plugbox-evil-sdist", "plugbox-evil-pth"]))
    info = VenvBuilder(tmp_path / "venvs").ensure_sync(manifest)
    site = next(info.path.glob("lib/python*/site-packages"))
    seen = (site / "plugbox_evil_sdist_seen.py").read_text()  # setup.py ran...
    assert "'secret': None" in seen  # ...without the host's environment
    assert "'marker': False" in seen
    assert "'caps': '0000000000000000'" in seen  # no capability
    pth_seen = (info.path / "pth-seen.txt").read_text()  # the .pth ran during compileall...
    assert pth_seen.strip().splitlines()[0] == "None"  # ...without the host's environment
    assert SECRET not in pth_seen
    assert not sdist_marker.exists()
    assert not pth_marker.exists()


def test_strict_refuses_requirements_without_a_current_lock(tmp_path: Path) -> None:
    manifest = load_manifest(plugin(tmp_path, ["six"]))
    with pytest.raises(VenvBuildError, match=r"no current requirements\.lock"):
        VenvBuilder(tmp_path / "venvs").ensure_sync(manifest, require_lock=True)


@needs_bwrap
def test_a_lock_is_installed_with_hashes_and_a_tampered_one_is_refused(tmp_path: Path) -> None:
    uv = uv_executable()
    assert uv is not None
    manifest = load_manifest(plugin(tmp_path, ["six==1.17.0"]))
    lock = write_lock(
        manifest,
        sdk_requirements=sdk_requirements(),
        python=str(base_interpreter()),
        uv=uv,
        cache_dir=uv_cache_dir(),
    )
    assert lock == manifest.directory / LOCK_FILE
    assert "six==1.17.0" in lock.read_text()
    assert "--hash=sha256:" in lock.read_text()
    info = VenvBuilder(tmp_path / "venvs").ensure_sync(manifest, require_lock=True)
    assert next(info.path.glob("lib/python*/site-packages/six.py")).is_file()
    text = lock.read_text()
    begin = text.index("six==")
    end = _block_end(text, begin)
    six_block = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[begin:end])
    lock.write_text(text[:begin] + six_block + text[end:])  # every hash of six now wrong
    with pytest.raises(VenvBuildError, match=r"(?i)hash"):
        VenvBuilder(tmp_path / "venvs2").ensure_sync(manifest, require_lock=True)


def _block_end(text: str, begin: int) -> int:
    """Where the lock entry starting at `begin` ends (the next line not indented)."""
    match = re.compile(r"\n[^\s]").search(text, begin)
    return match.start() if match else len(text)
