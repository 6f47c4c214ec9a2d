"""The first host started in a process freezes the start-up heap out of the cyclic collector's
way, once (issue #14: a full collection over pipecat's and the host's objects is a ~70 ms stall of
the call's loop). Run in a fresh interpreter: the test process has long since started hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import gc, json, sys
from pathlib import Path
import anyio
from host import HostConfig, PluginHost

async def main() -> None:
    root = Path(sys.argv[2])
    (root / "plugins").mkdir()
    config = HostConfig(
        plugins_root=root / "plugins", data_dir=root / "data", freeze_gc=sys.argv[1] == "on"
    )
    counts = [gc.get_freeze_count()]
    async with PluginHost(config):
        counts.append(gc.get_freeze_count())
    later = [[] for _ in range(1000)]  # made after start-up: a second freeze would take them
    async with PluginHost(config):
        counts.append(gc.get_freeze_count())
    print(json.dumps(counts))
    del later

anyio.run(main)
"""


@pytest.mark.parametrize("setting", ["on", "off"])
def test_the_first_host_started_freezes_the_heap_once(setting: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, setting, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, first, second = json.loads(done.stdout)
    assert before == 0
    if setting == "off":
        assert first == second == 0
        return
    assert first > 10_000  # the interpreter's and the host's start-up objects, frozen
    assert second < first + 1000  # once per process: a later host freezes nothing more
