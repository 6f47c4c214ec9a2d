"""Live call layer: the contract's host-side objects — runtime context and runtime sessions.

Contract: `async with open_call(context, plugins=...) as sessions:` is one call. It selects the
plugins that have runtime support and at least one node of their types in
`context.workflow_graph` (plugins without one start no process), learns the run's secrets once
(known host-wide until the last of its sessions finished, or the call ended), opens one live
session per plugin through its `PluginClient`, concurrently, and yields `HostRuntimeSession`s with
the contract's `attach(task)` and `async on_call_finished(*, gathered_context)`. All sessions of a
run share one bridge, so one observer is registered however many plugins attach. Each session's
pump runs in the call's own task group, never the host's: `on_call_finished` (or `finish_call`)
drains it and ends it, bounded, whatever state the plugin is in, and leaving the block ends
whatever is left — a pump stuck on a plugin that stopped reading, or a call that never reached
`finish_call` — so no pump, queue, `context.messages` provider or held secret outlives its call.
Events still queued then are dropped and counted (`call_ended`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from sdk.protocol import (
    ConnectionClosed,
    Method,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    SecretScrubber,
    iter_nodes,
)

from .._keys import KeyRule, granted_keys
from ..client import LiveSession, MessagesProvider, ResultError
from ._frames import FrameFilter
from ._queue import PluginQueue, RunBridge

if TYPE_CHECKING:
    from .._host import PluginHost

logger = logging.getLogger("plugbox.runtime")
DRAIN_TIMEOUT_S = 2.0  # sending a full queue to a healthy plugin takes well under a second
FINISH_TIMEOUT_S = 10.0  # a snapshot is in-memory work; a plugin slower than this is broken


def _no_messages() -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class IntegrationRuntimeContext:
    """The contract's runtime context, as the pipeline builds it."""

    workflow_run_id: int
    workflow_run: dict[str, Any] | None = None
    workflow_graph: dict[str, Any] | None = None
    run_definition: dict[str, Any] | None = None
    user_config: dict[str, Any] | None = None
    is_realtime: bool = False
    context_messages_provider: MessagesProvider = _no_messages


@dataclass
class HostRuntimeSession:
    """One plugin's live session in one run (the contract's `IntegrationRuntimeSession`)."""

    name: str
    bridge: RunBridge
    queue: PluginQueue | None  # None when `runtime.open` failed: see `open_error`
    live: LiveSession | None = None
    open_error: PluginError | None = None
    keys: KeyRule | None = None  # the log keys its snapshot may set (None: its name and prefix)
    held: HeldSecrets | None = None  # the run's secrets, known host-wide until the call ends

    def attach(self, task: Any) -> None:
        """The contract's hook: the run's one observer joins `task` (a pipecat PipelineWorker)."""
        self.bridge.attach(task)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        """Drain the queue, then ask for the plugin's snapshot under `FINISH_TIMEOUT_S`.

        The snapshot comes back checked and scrubbed. Raises the plugin's `PluginError` when its
        session never opened, its process died or restarted during the call (`PluginCrashed`),
        or it answers too late (`PluginTimeout`); `ResultError` when the snapshot is unstorable.
        """
        try:
            return await self._finish(gathered_context)
        finally:
            if self.held is not None:
                self.held.finished(self.name)

    async def _finish(self, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        queue, live = self.queue, self.live
        if queue is None or live is None:
            raise self.open_error or PluginError("session was never opened", plugin=self.name)
        if queue.ended:
            raise PluginError("the call ended before its snapshot was asked", plugin=self.name)
        try:
            await queue.drain(DRAIN_TIMEOUT_S)
            lost = queue.failure or live.lost()
            if lost is not None:
                queue.lost_with_process()
                raise lost
            try:
                snapshot = await live.finish(
                    gathered_context, queue.dropped, timeout=FINISH_TIMEOUT_S
                )
            except (PluginCrashed, ConnectionClosed):
                queue.lost_with_process()
                raise
            except ResultError:
                queue.finished()  # it answered: what it was handed was delivered
                raise
            queue.finished()
        finally:
            live.close()
        if queue.dropped:
            logger.warning("plugin %r: %d live events dropped", self.name, queue.dropped)
        return snapshot

    def end(self) -> None:
        """The call is over: end the queue (what is left is dropped), the live session and its
        hold on the run's secrets (idempotent: a finished session has let go already)."""
        if self.queue is not None:
            self.queue.end()
        if self.live is not None:
            self.live.close()
        if self.held is not None:
            self.held.finished(self.name)

    def delivery(self) -> dict[str, int]:
        """Delivery figures for the run's logs (`plugbox_live`)."""
        if self.queue is None:
            return {"delivered": 0, "dropped": 0}
        return {"delivered": self.queue.delivered, "dropped": self.queue.dropped}


class HeldSecrets:
    """A run's secrets, known to the host's scrubber (logs, errors) until every session of the
    run has finished its call (or the run's objects are garbage): runs never grow the host's set."""

    def __init__(self, plugins: PluginHost, secrets: SecretScrubber, open_: set[str]) -> None:
        self._plugins, self._secrets, self._open = plugins, secrets, set(open_)
        if not self._open:
            plugins.forget_secrets(secrets)

    def finished(self, name: str) -> None:
        self._open.discard(name)
        if not self._open:
            self._plugins.forget_secrets(self._secrets)


@asynccontextmanager
async def open_call(
    context: IntegrationRuntimeContext, *, plugins: PluginHost
) -> AsyncIterator[list[HostRuntimeSession]]:
    """One call: its sessions, opened, and their pumps, which end with the block at the latest.

    One session per runtime plugin with a node of its types in the run's graph (which of its
    nodes are enabled is the plugin's business: the contract names no field).
    """
    sessions = await _open_sessions(context, plugins)
    failure: Exception | None = None
    async with anyio.create_task_group() as pumps:
        for session in sessions:
            if session.queue is not None:
                pumps.start_soon(session.queue.pump)
        try:
            yield sessions
        except Exception as exc:  # re-raised below as itself, not in the group's ExceptionGroup
            failure = exc
        finally:
            for session in sessions:
                session.end()
            pumps.cancel_scope.cancel()  # a pump stuck on a full pipe ends here, with its call
    if failure is not None:
        raise failure


async def _open_sessions(
    context: IntegrationRuntimeContext, plugins: PluginHost
) -> list[HostRuntimeSession]:
    registry = plugins.registry
    if not registry.packages():
        await registry.refresh()
    secrets = plugins.learn_secrets(
        definitions=(context.workflow_graph, context.run_definition),
        user_config=context.user_config,
    )
    wanted = _plugins_with_nodes(context.workflow_graph or {}, plugins)
    bridge = RunBridge(context.workflow_run_id)
    try:
        opened = await _open_all(wanted, context, bridge, plugins, secrets)
    except BaseException:
        plugins.forget_secrets(secrets)
        raise
    sessions = [session for name in wanted if (session := opened[name]) is not None]
    held = HeldSecrets(plugins, secrets, {session.name for session in sessions})
    for session in sessions:
        session.held = held
        if session.queue is not None:
            bridge.add(session.queue)
    return sessions


async def _open_all(
    wanted: list[str],
    context: IntegrationRuntimeContext,
    bridge: RunBridge,
    plugins: PluginHost,
    secrets: SecretScrubber,
) -> dict[str, HostRuntimeSession | None]:
    """Open concurrently under one host-wide deadline; a late plugin misses this call.

    The opens run in the host's task group, not under a cancel scope: cancelling a plugin that is
    still starting would orphan its process, so a late one finishes in the background (warm for
    the next call) while this call goes on without it, and the session it opened is closed.
    """
    bound = plugins.config.session_open_timeout_s
    opened: dict[str, HostRuntimeSession | None] = {}
    failures: list[BaseException] = []
    all_done = anyio.Event()

    async def open_one(name: str) -> None:
        try:
            session = await _open(name, context, bridge, plugins, secrets)
            if name in opened and session is not None and session.live is not None:
                session.live.close()  # too late for this call: nothing may reach it
            opened.setdefault(name, session)
        except Exception as exc:  # a host bug, not a plugin's: the caller sees it
            failures.append(exc)
        if all(name in opened for name in wanted) or failures:
            all_done.set()

    for name in wanted:
        plugins.spawn(open_one, name)
    if wanted:
        with anyio.move_on_after(bound):
            await all_done.wait()
    if failures:
        raise failures[0]
    for name in wanted:
        if name not in opened:
            late = PluginTimeout(
                f"runtime.open did not finish within the host's {bound:g} s session-open bound; "
                "the plugin misses this call",
                plugin=name,
                method=Method.RUNTIME_OPEN,
            )
            logger.warning("plugin %r: %s", name, late)
            opened[name] = HostRuntimeSession(name, bridge, None, open_error=late)
    return opened


def _plugins_with_nodes(graph: dict[str, Any], plugins: PluginHost) -> list[str]:
    registry = plugins.registry
    capable = set(registry.packages_with_runtime())
    found = {
        owner
        for node in iter_nodes(graph)
        if (owner := registry.package_for_type(str(node.get("type")))) in capable
    }
    return sorted(found)


async def _open(
    name: str,
    context: IntegrationRuntimeContext,
    bridge: RunBridge,
    plugins: PluginHost,
    secrets: SecretScrubber,
) -> HostRuntimeSession | None:
    try:
        live = await plugins.client(name).open_live(context, secrets=secrets)
    except PluginError as exc:
        logger.error("plugin %r: runtime.open failed: %s", name, exc)
        return HostRuntimeSession(name, bridge, None, open_error=exc)
    if live is None:
        return None
    queue = PluginQueue(
        name,
        live.id,
        live.send,
        subscriptions=live.subscriptions,
        check=live.lost,
        frames=_frame_filter(plugins, name) if live.shadow else None,
    )
    return HostRuntimeSession(name, bridge, queue, live, keys=snapshot_rule(name, plugins))


def snapshot_rule(name: str, plugins: PluginHost) -> KeyRule:
    """The log keys plugin `name`'s snapshot may set: its name and prefix, its node types' names
    and the snapshot keys its manifest declares that no other plugin's namespace holds."""
    registry = plugins.registry
    packages = registry.packages()
    info = registry.get_package(name)
    own_types = set(info.type_names if info else ())
    others_types = {t for p in packages if p.name != name for t in p.type_names} - own_types
    names = [package.name for package in packages]
    declared = {n: m.snapshot_keys for n, m in plugins.manifests.items() if m.snapshot_keys}
    granted = granted_keys(name, declared, plugins=names, taken=others_types)
    return KeyRule.build(name, exact=own_types | granted, plugins=names)


def _frame_filter(plugins: PluginHost, name: str) -> FrameFilter:
    """The plugin's `[shadow]` manifest section: which frames its shadow task gets."""
    manifest = plugins.manifests.get(name)
    if manifest is None:
        return FrameFilter()
    shadow = manifest.shadow
    return FrameFilter(
        shadow.frames, audio=shadow.audio, audio_budget_bytes=shadow.audio_budget_bytes
    )
