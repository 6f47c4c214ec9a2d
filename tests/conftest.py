"""Fixtures shared by the test modules: a host on real plugin processes, and its run store.

`make_host(plugins_root, warm=..., **config)` opens a `PluginHost` (and a SQLite run store) the
way most tests need one: the host's interpreter (no venv build), no idle stop, the registry
loaded, the plugins the test calls started (as on a warm host: a cold start under load can exceed
a live call's 2 s session-open bound), all under a deadline. Every host of the session shares one
spec cache: a spec is keyed by the plugin's source hash and the SDK's, so a warm entry is exactly
what a cold start would fetch, and a plugin of the folder that a test never calls never starts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from host import HostConfig, PluginHost
from host.completion import SQLiteRunStore

# Fixture plugins share helper modules (`tests.fixtures.completion_plugins._common`, ...): every
# plugin on the host's interpreter gets the suite's folder mounted read-only (the SDK's parent is
# on its PYTHONPATH). Set for the session so worker subprocesses the tests start inherit it.
os.environ.setdefault("PLUGBOX_DEV_MOUNTS", str(Path(__file__).resolve().parent))

HostFactory = Callable[..., AbstractAsyncContextManager[tuple[PluginHost, SQLiteRunStore]]]
ConfigFactory = Callable[..., HostConfig]


@pytest.fixture(scope="session")
def spec_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spec cache for the session (content-addressed: see the module docstring)."""
    return tmp_path_factory.mktemp("spec-cache")


@pytest.fixture
def share_specs(spec_cache: Path) -> Callable[[Path], Path]:
    """`share_specs(data_dir)`: that data dir (made) reads and fills the session's spec cache,
    for hosts a test configures itself or starts in another process (a worker's data dir)."""

    def link(data_dir: Path) -> Path:
        data_dir.mkdir(parents=True, exist_ok=True)
        cache = data_dir / "spec-cache"
        if not cache.exists():
            cache.symlink_to(spec_cache, target_is_directory=True)
        return data_dir

    return link


@pytest.fixture
def make_config(tmp_path: Path, share_specs: Callable[[Path], Path]) -> ConfigFactory:
    """`make_config(plugins_root, **overrides)`: a test host's configuration under `tmp_path`."""

    def build(plugins_root: Path, **overrides: Any) -> HostConfig:
        data_dir = share_specs(overrides.pop("data_dir", tmp_path / "data"))
        settings: dict[str, Any] = {"use_venvs": False, "idle_timeout_s": None, **overrides}
        return HostConfig(plugins_root=plugins_root, data_dir=data_dir, **settings)

    return build


@pytest.fixture
def make_host(tmp_path: Path, make_config: ConfigFactory) -> HostFactory:
    """`async with make_host(plugins_root, **config) as (plugins, store):` (registry loaded)."""

    @asynccontextmanager
    async def open_host(
        plugins_root: Path,
        *,
        warm: Iterable[str] | None = None,
        deadline_s: float = 120,
        **overrides: Any,
    ) -> AsyncIterator[tuple[PluginHost, SQLiteRunStore]]:
        config = make_config(plugins_root, **overrides)
        with anyio.fail_after(deadline_s):
            async with PluginHost(config) as plugins, SQLiteRunStore(tmp_path / "runs.db") as store:
                await plugins.registry.refresh()
                async with anyio.create_task_group() as group:  # None: every plugin
                    for name in plugins.manifests if warm is None else warm:
                        group.start_soon(plugins.get(name).start)
                yield plugins, store

    return open_host
