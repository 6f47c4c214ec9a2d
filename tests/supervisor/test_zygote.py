"""Zygote: a crash costs a fork inside the same sandbox — never a re-import, never a new sandbox.

Real sandboxed processes (the host's default policy): the plugin's sandbox imports it once and
forks the worker that serves the host; a crashed worker is replaced by a fresh fork of the same
zygote, which keeps every sandbox property (namespaces, uid, capabilities, seccomp, cgroup,
rlimits). A dead zygote takes its worker with it, and the next call starts a new sandbox.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost, ProcessState
from sdk.protocol import Calls, CompletionContextWire, CompletionRunParams, PluginCrashed

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
NAMESPACES = ("pid", "mnt", "net", "ipc", "uts", "user", "cgroup")
STATUS_KEYS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
STATUS_KEYS += ("NoNewPrivs", "Seccomp")


@asynccontextmanager
async def plugin_host(tmp_path: Path) -> AsyncIterator[PluginHost]:
    config = HostConfig(
        plugins_root=FIXTURES,
        data_dir=tmp_path / "data",
        use_venvs=False,  # the host interpreter: these tests are about processes, not venvs
        idle_timeout_s=None,
    )
    with anyio.fail_after(90):
        async with PluginHost(config) as plugins:
            yield plugins


async def complete(plugins: PluginHost, node_name: str = "x") -> dict[str, Any]:
    context = CompletionContextWire(1, {}, {}, 1)
    params = CompletionRunParams(
        [{"id": "n1", "type": "misbehaving", "data": {"name": node_name}}], context
    )
    result = await plugins.get("misbehaving").call(Calls.COMPLETION_RUN, params)
    answer: dict[str, Any] = result.result["n1"]
    return answer


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def parent(pid: int) -> int:
    return int(status(pid)["PPid"])


def alive(pid: int) -> bool:
    try:
        return not status(pid)["State"].strip().startswith(("Z", "X"))
    except OSError:
        return False


async def wait_gone(pids: set[int]) -> None:
    with anyio.fail_after(5):
        while any(alive(pid) for pid in pids):  # noqa: ASYNC110 - no event for another's exit
            await anyio.sleep(0.02)  # the kernel reaps asynchronously; bounded


def sandbox_view(pid: int) -> dict[str, str]:
    """What the sandbox decides about a process, read from the host's /proc."""
    view = {f"ns/{ns}": os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}
    view |= {key: status(pid)[key].strip() for key in STATUS_KEYS}
    view["cgroup"] = Path(f"/proc/{pid}/cgroup").read_text()
    view["limits"] = Path(f"/proc/{pid}/limits").read_text()
    return view


async def test_a_crashed_worker_is_reforked_by_the_same_zygote_without_reimporting(
    tmp_path: Path,
) -> None:
    async with plugin_host(tmp_path) as plugins:
        handle = plugins.get("misbehaving")
        first = await complete(plugins)
        assert first["pid"] != first["imported_in"]  # served by a fork of the importing process
        worker = handle.plugin_pid
        assert worker is not None
        zygote = parent(worker)
        with pytest.raises(PluginCrashed) as caught:
            await complete(plugins, node_name="crash")
        assert "exited with code 7" in str(caught.value)
        second = await complete(plugins)
        assert second["imported_in"] == first["imported_in"]  # the same import, not a new one
        assert second["pid"] != first["pid"]  # a fresh worker
        new_worker = handle.plugin_pid
        assert new_worker is not None
        assert new_worker != worker
        assert parent(new_worker) == zygote
        assert handle.zygote is not None
        assert handle.zygote.launches == 1
        assert handle.restarts == 1


async def test_a_worker_keeps_every_sandbox_property_of_its_zygote(tmp_path: Path) -> None:
    async with plugin_host(tmp_path) as plugins:
        handle = plugins.get("misbehaving")
        await complete(plugins)
        assert "bwrap" in handle.layers  # the default policy, on a machine that has it
        worker = handle.plugin_pid
        assert worker is not None
        zygote = parent(worker)
        view = sandbox_view(worker)
        assert view == sandbox_view(zygote)
        host = sandbox_view(os.getpid())
        for ns in ("pid", "mnt", "net", "ipc", "uts"):
            assert view[f"ns/{ns}"] != host[f"ns/{ns}"], ns
        assert view["NoNewPrivs"] == "1"
        assert view["Seccomp"] == "2"  # a filter is installed
        assert int(view["CapEff"], 16) == 0
        assert int(view["CapBnd"], 16) == 0
        if os.geteuid() == 0:
            assert view["Uid"].split()[0] != "0"  # the plugin's own uid, never root


async def test_a_killed_zygote_takes_its_worker_and_the_next_call_starts_a_new_sandbox(
    tmp_path: Path,
) -> None:
    async with plugin_host(tmp_path) as plugins:
        handle = plugins.get("misbehaving")
        await complete(plugins)
        worker = handle.plugin_pid
        assert worker is not None
        zygote = parent(worker)
        ended = anyio.Event()
        handle.on_exit(lambda process, error: ended.set())
        os.kill(zygote, signal.SIGKILL)
        with anyio.fail_after(10):
            await ended.wait()
        assert handle.state is ProcessState.CRASHED
        await wait_gone({worker})  # it dies with its zygote
        again = await complete(plugins)
        assert again["ok"] is True
        new_worker = handle.plugin_pid
        assert new_worker is not None
        assert parent(new_worker) != zygote
        assert handle.zygote is not None
        assert handle.zygote.launches == 2


async def test_stopping_the_plugin_ends_its_zygote(tmp_path: Path) -> None:
    async with plugin_host(tmp_path) as plugins:
        handle = plugins.get("misbehaving")
        await complete(plugins)
        worker = handle.plugin_pid
        assert worker is not None
        zygote = parent(worker)
        await handle.aclose()
        assert handle.state is ProcessState.STOPPED
        assert handle.zygote is not None
        assert not handle.zygote.alive
        await wait_gone({worker, zygote})


def fresh(plugins: PluginHost) -> None:
    """Turn on `[completion] fresh_process` for the misbehaving plugin."""
    handle = plugins.get("misbehaving")
    completion = handle.manifest.completion.model_copy(update={"fresh_process": True})
    handle.manifest = handle.manifest.model_copy(update={"completion": completion})


def children_of(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return {int(c) for task in tasks for c in (task / "children").read_text().split()}


async def test_fresh_process_runs_each_completion_in_its_own_fork(tmp_path: Path) -> None:
    async with plugin_host(tmp_path) as plugins:
        handle = plugins.get("misbehaving")
        assert (await complete(plugins))["runs_here"] == 1  # the serving worker
        assert (await complete(plugins))["runs_here"] == 2  # the same process remembers
        serving = handle.plugin_pid
        assert serving is not None
        zygote = parent(serving)
        fresh(plugins)
        answers = [await complete(plugins) for _ in range(3)]
        assert [a["runs_here"] for a in answers] == [1, 1, 1]  # nothing survives a run
        assert len({a["pid"] for a in answers}) == 3
        assert {a["imported_in"] for a in answers} == {answers[0]["imported_in"]}  # no re-import
        assert handle.plugin_pid == serving  # the serving worker is untouched...
        assert children_of(zygote) == {serving}  # ...and no run's fork is left behind
        with pytest.raises(PluginCrashed) as caught:
            await complete(plugins, node_name="crash")
        assert "exited with code 7" in str(caught.value)
        assert handle.state is ProcessState.READY  # a run's crash is the run's, not the plugin's
        assert handle.plugin_pid == serving
        assert (await complete(plugins))["runs_here"] == 1
        assert handle.zygote is not None
        assert handle.zygote.launches == 1
