"""A plugin's data directory is held to its `disk_mb` quota (issue #14): a plugin writing past
it is killed with `LimitExceeded` (limit `disk`), is not started again while the directory stays
over, and the host and other plugins go on. The writer is bounded twice: it writes at most 64 MiB
and `file_size_mb = 2` (RLIMIT_FSIZE) caps each file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost
from host._disk import DISK_POLL_S, MIB, disk_usage
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams, LimitExceeded

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def params(node_type: str, mb: int = 0) -> CompletionRunParams:
    node = {"id": "n1", "type": node_type, "data": {"name": "x", "mb": mb}}
    return CompletionRunParams([node], CompletionContextWire(1, {}, {}, 1))


def test_usage_counts_blocks_and_entries_and_never_follows_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * MIB)
    with (tmp_path / "sparse").open("wb") as sparse:
        sparse.truncate(1024 * MIB)  # 1 GiB apparent, nothing stored
    (tmp_path / "sub").mkdir()
    for index in range(100):
        (tmp_path / "sub" / f"empty-{index}").touch()
    (tmp_path / "link").symlink_to("/usr")
    used = disk_usage(tmp_path)
    assert MIB + 100 * 4096 <= used < 3 * MIB
    assert disk_usage(tmp_path, stop_above=MIB // 2) < 2 * MIB  # the walk stops early


async def test_a_plugin_writing_past_its_quota_is_stopped_and_the_others_go_on(
    tmp_path: Path,
) -> None:
    plugins_root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "disk_plugins" / "filler", plugins_root / "filler")
    shutil.copytree(FIXTURES / "plugins" / "healthy", plugins_root / "healthy")
    config = HostConfig(
        plugins_root=plugins_root, data_dir=tmp_path / "data", use_venvs=False, idle_timeout_s=None
    )
    with anyio.fail_after(120):
        async with PluginHost(config) as plugins:
            filler = plugins.get("filler")
            with pytest.raises(LimitExceeded) as killed:
                await filler.call(Calls.COMPLETION_RUN, params("filler", mb=64))
            assert "disk quota 4 MiB exceeded" in str(killed.value)
            assert killed.value.data["limit"] == "disk"
            assert filler.config is not None
            data_dir = filler.config.data_dir
            written = disk_usage(data_dir)
            # Stopped within a poll or two of crossing 4 MiB, far below the 64 MiB it wanted.
            assert 4 * MIB < written < 4 * MIB + (2 + 4 * DISK_POLL_S / 0.05) * MIB
            healthy = await plugins.get("healthy").call(Calls.COMPLETION_RUN, params("healthy"))
            assert healthy.result  # the host and the other plugin go on
            with pytest.raises(LimitExceeded) as refused:
                await filler.call(Calls.COMPLETION_RUN, params("filler"))
            assert "not started: disk quota 4 MiB exceeded" in str(refused.value)
            for blob in data_dir.glob("blob-*"):
                blob.unlink()  # the operator frees space: the plugin starts again
            again = await filler.call(Calls.COMPLETION_RUN, params("filler", mb=1))
            assert again.result["n1"]["written_mb"] == 1
