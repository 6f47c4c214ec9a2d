"""Host layer: `PluginHost`, the one object a platform holds — discovery, venvs, processes, specs.

Contract: `async with PluginHost(HostConfig(...)) as plugins:` discovers the plugins (broken
manifests in `discovery_errors`), gives a lazily started `PluginHandle` per plugin (`get`), and a
`Registry` over their specs; leaving the block stops every plugin through its shutdown ladder.
Venvs are built on a plugin's first start, or all at once with `install()`. The first host
started in a process freezes the objects alive then out of the cyclic collector's way
(`freeze_startup_heap`; `HostConfig.freeze_gc=False` opts out).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from sdk.protocol import PluginError, ScrubbingFilter, SecretScrubber

from ._egress import EgressProxy
from ._grants import GRANTS_FILE, Effective, Grants, load_grants, resolve
from ._logs import PluginLogs
from ._manifest import DiscoveryError, Manifest, discover
from ._process import LaunchConfig
from ._registry import Registry
from ._runner import Runner
from ._supervisor import PluginHandle
from ._venv import Progress, VenvBuilder, VenvInfo, host_venv, sdk_hash, sdk_source_dir
from .client import PluginClient, learn_secrets
from .sandbox import SandboxPermissions, SandboxPolicy, launch

# The host's loggers: a filter on each masks known secrets before any handler sees a record
# (a logger's filters do not apply to records propagated from its children, hence the list).
HOST_LOGGERS = (
    "plugbox.supervisor",
    "plugbox.registry",
    "plugbox.runtime",
    "plugbox.completion",
    "plugbox.jobs",
    "plugbox.sandbox",
)


def dev_mounts_from_env() -> tuple[Path, ...]:
    """`PLUGBOX_DEV_MOUNTS`: extra read-only folders for plugins on the host's interpreter."""
    value = os.environ.get("PLUGBOX_DEV_MOUNTS", "")
    return tuple(Path(part) for part in value.split(os.pathsep) if part)


@dataclass(frozen=True)
class HostConfig:
    plugins_root: Path = Path("plugins")
    data_dir: Path = Path(".plugbox")
    sandbox_policy: SandboxPolicy = SandboxPolicy.standard
    idle_timeout_s: float | None = 300.0  # an unused plugin process is stopped after this
    # One deadline for opening all of a call's plugin sessions: a slow plugin misses the call.
    session_open_timeout_s: float = 2.0
    use_venvs: bool = True  # False: run plugins on the host interpreter (development only)
    # With `use_venvs = False` only: folders mounted read-only into every plugin's sandbox besides
    # the SDK and the host's venv (e.g. helpers plugins under development share). Default: the
    # `PLUGBOX_DEV_MOUNTS` environment variable, paths separated by `os.pathsep`.
    dev_mounts: tuple[Path, ...] = field(default_factory=dev_mounts_from_env)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The operator's grants: this object, else the file (default: `<data_dir>/grants.toml`).
    grants: Grants | None = None
    # Each plugin's sandbox imports it once and forks a fresh worker per start (host/_zygote.py).
    zygote: bool = True
    grants_file: Path | None = None
    # Freeze the start-up heap out of the cyclic collector's way (`freeze_startup_heap`).
    freeze_gc: bool = True

    def load_grants(self) -> Grants:
        if self.grants is not None:
            return self.grants
        return load_grants(self.grants_file or self.data_dir / GRANTS_FILE)


_heap_frozen = False


def freeze_startup_heap() -> bool:
    """Move every object alive now out of the cyclic collector's way; once per process.

    A full (generation 2) collection walks every tracked object, and it runs on whatever thread
    allocates when the thresholds trip: the call's loop. With pipecat, pydantic and the host
    imported that is ~110k objects, 66-71 ms of CPU (measured): one such collection is a stall
    seven times the flood budget (issue #14). What is alive at start-up (modules, classes,
    registries) lives as long as the process; frozen (CPython's `gc.freeze()`), the collector
    never walks it again: the same collection then took 0.01 ms. The price: cyclic garbage that
    exists at that moment is never reclaimed, bounded because it happens once. True when this
    call froze the heap.
    """
    global _heap_frozen
    if _heap_frozen:
        return False
    gc.freeze()
    _heap_frozen = True
    return True


class UnknownPlugin(PluginError):
    """No plugin of that name was discovered."""


class PluginHost:
    """Discovered plugins, their handles and their registry."""

    def __init__(
        self,
        config: HostConfig | None = None,
        *,
        progress: Progress | None = None,
        runner: Runner | None = None,
    ) -> None:
        config = config or HostConfig()
        self._runner = runner  # None: the sandbox (`host.testing.FakeRunner` in logic tests)
        # Absolute paths: plugin processes run with their data directory as cwd.
        self.config = replace(
            config, plugins_root=config.plugins_root.resolve(), data_dir=config.data_dir.resolve()
        )
        found = discover(self.config.plugins_root)
        self.manifests: dict[str, Manifest] = found.manifests
        self.discovery_errors: list[DiscoveryError] = found.errors
        data = self.config.data_dir
        self.grants = self.config.load_grants()
        self.egress = EgressProxy()  # one per host; a listener per plugin with an allowlist
        self.venvs = VenvBuilder(data / "venvs", progress=progress)
        self.registry = Registry(
            self.manifests,
            self.client,
            data / "spec-cache",
            sdk_hash(),
            pins=lambda: self.grants.type_pins(),
        )
        self._handles: dict[str, PluginHandle] = {}
        self._clients: dict[str, PluginClient] = {}
        # Every plugin's recent log records, in memory and in <data>/logs (read by `plugbox logs`).
        self.logs = PluginLogs(data / "logs")
        # Known secret values, masked out of logs, errors, metrics and stored results.
        self.scrubber = SecretScrubber()
        self._holds: weakref.WeakKeyDictionary[SecretScrubber, weakref.finalize[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.log_filter = ScrubbingFilter(self.scrubber)
        self._group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> PluginHost:
        for name in HOST_LOGGERS:
            logging.getLogger(name).addFilter(self.log_filter)
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self.logs.attach()
        if self.config.freeze_gc:
            freeze_startup_heap()  # started: what exists now is the long-lived heap
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        self.logs.detach()
        for name in HOST_LOGGERS:
            logging.getLogger(name).removeFilter(self.log_filter)
        assert self._group is not None
        self._group.cancel_scope.cancel()
        # The body's own exception is not handed to the group, so it propagates unwrapped.
        await self._group.__aexit__(None, None, None)

    def get(self, name: str) -> PluginHandle:
        """The handle of plugin `name` (no process is started until it is used)."""
        handle = self._handles.get(name)
        if handle is not None:
            return handle
        manifest = self.manifests.get(name)
        if manifest is None:
            raise UnknownPlugin(
                f"no plugin named {name!r} under {self.config.plugins_root}", plugin=name
            )
        if self._group is None:
            raise RuntimeError("PluginHost is used outside `async with`")

        async def config() -> LaunchConfig:
            return await self._launch_config(manifest)

        handle = self._handles[name] = PluginHandle(
            manifest,
            config,
            self._group,
            scrubber=self.scrubber,
            runner=self._runner or launch,
            zygote=self.config.zygote and self._runner is None,  # a fake runner forks nothing
        )
        return handle

    def client(self, name: str) -> PluginClient:
        """The client of plugin `name`: the only way host code calls a plugin."""
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = PluginClient(
                self.get(name),
                self.registry,
                self.scrubber,
                config_fields=self.grants.host.user_config_fields,
            )
        return client

    def learn_secrets(
        self,
        *,
        definitions: Iterable[Mapping[str, Any] | None] = (),
        user_config: Mapping[str, Any] | None = None,
    ) -> SecretScrubber:
        """The secrets of one run, learnt once: a scrubber for its answers; the host's (logs,
        errors, metrics) knows the same values until `forget_secrets(found)` (the run ended) or
        until the run's scrubber is garbage, so runs never grow the host's set."""
        found = learn_secrets(
            SecretScrubber(),
            self.registry.sensitive_fields,
            definitions=definitions,
            user_config=user_config,
        )
        # The finaliser holds the release, not `found`: a dropped run still releases its hold.
        self._holds[found] = weakref.finalize(found, self.scrubber.hold(found.values()))
        return found

    def forget_secrets(self, found: SecretScrubber) -> None:
        """The run that learnt `found` ended: the host's scrubber forgets its values (unless
        another run or request still holds them). Idempotent."""
        hold = self._holds.pop(found, None)
        if hold is not None:
            hold()

    @contextmanager
    def scoped_secrets(
        self, *, definitions: Iterable[Mapping[str, Any] | None] = ()
    ) -> Iterator[SecretScrubber]:
        """The secrets of one request, known to the host's scrubber only while the block runs."""
        found = learn_secrets(
            SecretScrubber(), self.registry.sensitive_fields, definitions=definitions
        )
        with self.scrubber.scoped(found.values()) as scrubber:
            yield scrubber

    def spawn(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run a background task for as long as the host lives (a call's tasks live in the call)."""
        if self._group is None:
            raise RuntimeError("PluginHost is used outside `async with`")
        self._group.start_soon(function, *args)

    @property
    def handles(self) -> dict[str, PluginHandle]:
        return dict(self._handles)

    def effective(self, manifest: Manifest) -> Effective:
        """What `manifest` runs with under the operator's grants; `NotGranted` names excess."""
        return resolve(manifest, self.grants, self.config.sandbox_policy)

    async def _launch_config(self, manifest: Manifest) -> LaunchConfig:
        data_dir = self.config.data_dir / "plugins" / manifest.name / "data"
        granted = self.effective(manifest)
        egress = None
        if isinstance(granted.network, tuple) and granted.network:
            egress = await self.egress.listen(manifest.name, granted.network)
        common = {
            "egress_dir": egress,
            "data_dir": data_dir.resolve(),
            "sandbox_policy": granted.policy,
            "idle_timeout_s": self.config.idle_timeout_s,
            "extra_env": self.config.extra_env,
            "limits": granted.limits,
            "permissions": SandboxPermissions(
                network=granted.network is True,
                env_keys=granted.env,
                writable_paths=tuple(Path(p) for p in granted.writable_paths),
            ),
        }
        if not self.config.use_venvs:
            # The host's own interpreter: the plugin sees the SDK package and the host's venv,
            # each bound on its own, never the folder that holds them (a checkout's root may be
            # 0700, e.g. made by `mktemp -d`, and it holds the operator's files).
            sdk_dir = sdk_source_dir()
            return LaunchConfig(
                python=Path(sys.executable),
                pythonpath=(sdk_dir.parent,),
                venv_dir=host_venv(),
                read_only_paths=(sdk_dir, *(p.resolve() for p in self.config.dev_mounts)),
                **common,  # type: ignore[arg-type]
            )
        venv = await self.ensure_venv(manifest)
        return LaunchConfig(python=venv.python, venv_dir=venv.path, **common)  # type: ignore[arg-type]

    async def ensure_venv(self, manifest: Manifest) -> VenvInfo:
        """The plugin's venv, built only once its grants allow it (interpreter, lock)."""
        granted = self.effective(manifest)
        return await self.venvs.ensure(
            manifest,
            python=granted.python,
            require_lock=granted.policy is SandboxPolicy.strict,
        )

    async def install(self) -> dict[str, VenvInfo]:
        """Build (or reuse) every plugin's venv now."""
        return {name: await self.ensure_venv(m) for name, m in self.manifests.items()}

    async def aclose(self) -> None:
        """Stop every started plugin, in parallel, each through its shutdown ladder."""
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for handle in self._handles.values():
                    group.start_soon(handle.aclose)
            await self.egress.aclose()
