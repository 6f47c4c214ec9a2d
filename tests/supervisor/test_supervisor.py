"""Supervisor: real plugin subprocesses misbehaving in named modes; the host stays up."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from host import HostConfig, PluginHost, ProcessState
from sdk.protocol import (
    Calls,
    CompletionContextWire,
    CompletionRunParams,
    CompletionRunResult,
    FrameTooLarge,
    HandshakeError,
    PingParams,
    PingResult,
)

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def plugin_host(tmp_path: Path, mode: str = "none") -> AsyncIterator[PluginHost]:
    config = HostConfig(
        plugins_root=FIXTURES,
        data_dir=tmp_path / "data",
        use_venvs=False,  # the host interpreter: these tests are about processes, not venvs
        idle_timeout_s=None,
        extra_env={"PLUGBOX_TEST_MODE": mode},
    )
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            yield plugins


def completion_params() -> CompletionRunParams:
    context = CompletionContextWire(1, {}, {}, 1)
    return CompletionRunParams(
        [{"id": "n1", "type": "misbehaving", "data": {"name": "x"}}], context
    )


async def complete(plugins: PluginHost, name: str = "misbehaving") -> CompletionRunResult:
    result: CompletionRunResult = await plugins.get(name).call(
        Calls.COMPLETION_RUN, completion_params()
    )
    return result


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it, from the process table (host pid namespace)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.update(children)
        frontier.extend(children)
    return found


async def tree_of(plugins: PluginHost, name: str = "misbehaving") -> set[int]:
    pid = plugins.get(name).pid
    assert pid is not None
    return descendants(pid)


async def wait_gone(pids: set[int]) -> None:
    with anyio.fail_after(5):
        while any(alive(pid) for pid in pids):  # noqa: ASYNC110 - no event for another's exit
            await anyio.sleep(0.02)  # the kernel reaps asynchronously; bounded


def alive(pid: int) -> bool:
    """Running, not a zombie. The process may exit between any two looks: that is "not alive"
    (reading /proc/<pid>/stat of a process that just went raises ESRCH, not FileNotFoundError)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # FileNotFoundError, ProcessLookupError
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # after the comm (may hold spaces)


async def test_a_healthy_plugin_answers_and_is_stopped_cleanly(tmp_path: Path) -> None:
    async with plugin_host(tmp_path) as plugins:
        await complete(plugins)
        tree = await tree_of(plugins)
        assert all(alive(pid) for pid in tree)
    assert plugins.get("misbehaving").state is ProcessState.STOPPED
    await wait_gone(tree)  # the sandbox's own children are reaped by the kernel, a moment later


async def test_a_plugin_crashing_at_import_fails_the_handshake_with_its_traceback(
    tmp_path: Path,
) -> None:
    async with plugin_host(tmp_path, "crash_import") as plugins:
        with pytest.raises(HandshakeError) as caught:
            await complete(plugins)
        assert "crash at import" in str(caught.value)
        assert caught.value.plugin == "misbehaving"
        assert (await complete(plugins, "healthy")).result  # the others keep serving


async def test_a_plugin_exiting_at_import_fails_the_handshake_naming_its_exit_code(
    tmp_path: Path,
) -> None:
    # A hung or wrong-version handshake, a crash or a hang mid-call, and the whole shutdown
    # ladder are host logic: test_lifecycle.py proves them on the in-memory runner. What needs
    # a real process stays here: an exit at import, the process tree, floods, the pipe.
    async with plugin_host(tmp_path, "exit_import") as plugins:
        with pytest.raises(HandshakeError, match="exited with code 3"):
            await complete(plugins)


async def test_a_grandchild_ignoring_sigterm_dies_with_the_plugin(tmp_path: Path) -> None:
    async with plugin_host(tmp_path, "grandchild") as plugins:
        await complete(plugins)
        tree = await tree_of(plugins)
        assert len(tree) >= 3  # the sandbox or plugin process, the plugin, the grandchild
    await wait_gone(tree)


async def test_a_stderr_flood_with_long_lines_never_blocks_the_plugin(tmp_path: Path) -> None:
    async with plugin_host(tmp_path, "stderr_flood") as plugins:
        result = await complete(plugins)
        assert result.result["n1"]["ok"] is True


async def test_garbage_on_the_wire_is_counted_and_the_call_still_answers(tmp_path: Path) -> None:
    async with plugin_host(tmp_path, "garbage_stdout") as plugins:
        handle = plugins.get("misbehaving")
        ping: PingResult = await handle.call(Calls.PING, PingParams())
        assert ping.pid > 0
        proc = await handle.start()
        assert proc.session.parse_failures >= 1


async def test_an_oversize_response_is_a_typed_error_and_the_plugin_keeps_serving(
    tmp_path: Path,
) -> None:
    async with plugin_host(tmp_path, "oversize") as plugins:
        with pytest.raises(FrameTooLarge):
            await complete(plugins)
        ping: PingResult = await plugins.get("misbehaving").call(Calls.PING, PingParams())
        assert ping.pid > 0


async def test_the_negotiated_frame_size_binds_what_each_side_sends(tmp_path: Path) -> None:
    limit = 128 * 1024  # the plugin's own limit, lower than the host's 16 MiB offer
    config = HostConfig(
        plugins_root=FIXTURES,
        data_dir=tmp_path / "data",
        use_venvs=False,
        idle_timeout_s=None,
        extra_env={"PLUGBOX_TEST_MODE": "oversize", "PLUGBOX_MAX_FRAME_SIZE": str(limit)},
    )
    with anyio.fail_after(60):
        async with PluginHost(config) as plugins:
            handle = plugins.get("misbehaving")
            await handle.call(Calls.PING, PingParams())
            assert handle.handshake is not None
            assert handle.handshake.max_frame_size == limit
            big = CompletionRunParams(
                [{"id": "n1", "type": "misbehaving", "data": {"name": "x" * limit}}],
                CompletionContextWire(1, {}, {}, 1),
            )
            with pytest.raises(FrameTooLarge, match=f"exceeds {limit}"):  # never sent
                await handle.call(Calls.COMPLETION_RUN, big)
            with pytest.raises(FrameTooLarge, match=f"exceeds {limit}"):  # the plugin's refusal
                await complete(plugins)
            ping: PingResult = await handle.call(Calls.PING, PingParams())
            assert ping.pid > 0


def test_no_plugin_survives_its_host_killed_by_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import anyio, sys
        from pathlib import Path
        from host import HostConfig, PluginHost
        from sdk.protocol import Calls, PingParams

        async def main():
            config = HostConfig(
                plugins_root=Path({str(FIXTURES)!r}), data_dir=Path({str(tmp_path)!r}),
                use_venvs=False, idle_timeout_s=None,
            )
            async with PluginHost(config) as plugins:
                for name in ("healthy", "misbehaving"):
                    handle = plugins.get(name)
                    await handle.call(Calls.PING, PingParams())
                    print(handle.pid, flush=True)
                await anyio.sleep_forever()

        anyio.run(main)
        """
    )
    host = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO, text=True
    )
    assert host.stdout is not None
    roots = [int(host.stdout.readline()), int(host.stdout.readline())]
    pids = set().union(*(descendants(pid) for pid in roots))
    assert len(pids) >= 2
    assert all(alive(pid) for pid in pids)
    host.send_signal(signal.SIGKILL)
    host.wait(timeout=10)
    host.stdout.close()
    anyio.run(_gone_within_two_seconds, pids)


async def _gone_within_two_seconds(pids: set[int]) -> None:
    with anyio.fail_after(2):  # the acceptance target
        while any(alive(pid) for pid in pids):  # noqa: ASYNC110 - no event for another's exit
            await anyio.sleep(0.02)  # the OS decides; bounded
