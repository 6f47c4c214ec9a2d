"""Sandbox: the bubblewrap layer when the host runs as an ordinary user (issue #14).

CI runs as root, so this test drops to `nobody` itself: a small host process, started through
`setpriv` as uid 65534 (inside a mount namespace where the interpreter under /root is readable,
since /root is private), loads the hostile escaper plugin under `standard` and drives its import,
validate and completion channels. From inside, the plugin reports what it got: the host's own
uid (there is no other to give it), no capability, no_new_privs, the seccomp filter, no remount,
no `open_by_handle_at`, no write to its venv, plugin folder or the system, no read of its
neighbour's secret or the run store. That nothing reached the host is checked from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from host.sandbox import probe_layers

# xdist: beside test_escape.py (the same escape plugins and planted paths).
pytestmark = pytest.mark.xdist_group("escape")

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "tests" / "fixtures" / "escape_plugins"
NOBODY = 65534
LAYERS = {layer.name: layer for layer in probe_layers()}
DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import anyio
    from host import HostConfig, PluginHost
    from host.sandbox import SandboxPolicy
    from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams

    async def main(work: Path) -> None:
        config = HostConfig(
            plugins_root=work / "plugins", data_dir=work / "data", use_venvs=False,
            idle_timeout_s=None, sandbox_policy=SandboxPolicy.standard,
        )
        node = {"id": "e", "type": "escaper", "data": {"name": "e"}}
        params = CompletionRunParams([node], CompletionContextWire(1, {}, {}, 1))
        with anyio.fail_after(120):
            async with PluginHost(config) as plugins:
                await plugins.registry.refresh()
                await plugins.registry.validate_node("escaper", {"name": "e"})
                await plugins.get("escaper").call(Calls.COMPLETION_RUN, params)

    anyio.run(main, Path(sys.argv[1]))
    """
)


def run_as_nobody(work: Path) -> subprocess.CompletedProcess[str]:
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    assert bwrap is not None
    assert setpriv is not None
    argv = [bwrap, "--dev-bind", "/", "/"]
    covered: set[Path] = set()
    argv += reachable(Path(sys.base_prefix).resolve(), covered=covered)
    argv += reachable(REPO, ("host", "sdk", ".venv"), covered=covered)
    argv += ["--", setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    argv += [sys.executable, "-c", DRIVER, str(work)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    env["HOME"] = str(work)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)


def reachable(target: Path, children: tuple[str, ...] = (), *, covered: set[Path]) -> list[str]:
    """bwrap options that let nobody reach `target` when a folder above it (or it) is closed to
    others (/root, or a checkout made by `mktemp -d`): a tmpfs over the highest closed folder,
    0755 folders down to `target`, then `target` (or only its `children`) bound read-only."""
    chain = [*reversed(target.parents), target][1:]  # without "/"
    closed = [folder for folder in chain if not folder.stat().st_mode & stat.S_IXOTH]
    if not closed:
        return []
    top = closed[0]
    args = [] if top in covered else ["--tmpfs", str(top)]  # a second tmpfs would hide the first
    covered.add(top)
    for folder in chain[chain.index(top) + 1 :] if children else chain[chain.index(top) + 1 : -1]:
        args += ["--perms", "0755", "--dir", str(folder)]
    for source in [target / child for child in children] or [target]:
        args += ["--ro-bind", str(source), str(source)]
    return args


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody from root, as CI runs")
@pytest.mark.skipif(not LAYERS["bwrap"].available, reason=f"{LAYERS['bwrap']}")
def test_a_hostile_plugin_of_a_non_root_host_stays_in_its_sandbox() -> None:
    # Not pytest's tmp_path: its base directory is 0700, and nobody must reach the workspace.
    with tempfile.TemporaryDirectory(prefix="plugbox-nonroot-") as scratch:
        check_as_nobody(Path(scratch) / "work")


def check_as_nobody(work: Path) -> None:
    (work / "plugins").mkdir(parents=True)
    for name in ("escaper", "victim"):
        shutil.copytree(PLUGINS / name, work / "plugins" / name)
    victim = work / "data" / "plugins" / "victim" / "data"
    victim.mkdir(parents=True)
    (victim / "secret.txt").write_text("the victim's secret")
    os.chmod(work.parent, 0o755)
    for path in [work, *work.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)

    outcome = run_as_nobody(work)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    data = work / "data" / "plugins" / "escaper" / "data"
    lines = (data / "reports.jsonl").read_text().splitlines()
    seen: dict[str, dict[str, Any]] = {}
    for line in lines:
        entry = json.loads(line)
        seen[entry["channel"]] = entry["report"]
    assert {"import", "validate", "completion"} <= set(seen)
    for channel, found in seen.items():
        where = f"{channel}: {found}"
        assert found["init_uid"] == NOBODY, where  # the host's uid: never root
        assert found["cap_eff"] == 0, where
        assert found["no_new_privs"] == 1, where
        assert found["seccomp"] == 2, where
        assert "ok" not in found["remount"].values(), where
        assert found["open_by_handle_at"] != "ok", where
        assert found["unshare_user"] != "ok", where
        for target in ("venv_pth", "venv_root", "plugin_dir", "usr", "core_pattern", "sysrq"):
            assert found["writes"][target] != "ok", where
        for target in ("etc_shadow", "victim_secret", "run_store"):
            assert found["reads"][target] != "ok", where
    # Its neighbour's directory and the data root are not mounted in its sandbox: as the host's
    # own uid it may create those paths there, in its private /tmp, which never reaches the host.
    assert os.listdir(victim) == ["secret.txt"]
    planted = [p for p in work.rglob("escaped-by-escaper*") if data not in p.parents]
    assert planted == []
    assert not (Path("/usr/lib") / "escaped-by-escaper").exists()
