"""Live call layer: the contract's host-side objects — runtime context and runtime sessions.

Contract: `create_runtime_sessions(context, plugins=...)` selects the plugins that have runtime
support and at least one node of their types in `context.workflow_graph` (plugins without
one start no process), opens one plugin session per plugin per run, concurrently (`runtime.open`,
with a context redacted for that plugin), and returns `HostRuntimeSession`s with the contract's
`attach(task)` and `async on_call_finished(*, gathered_context)`. All sessions of a run share one
bridge, so one observer is registered however many plugins attach. It is async (the in-process call
is sync) because opening a session crosses the process boundary.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from sdk.protocol import (
    ContextMessagesParams,
    ContextMessagesResult,
    InvalidParams,
    Method,
    PluginCrashed,
    PluginError,
    PluginTimeout,
    RuntimeContextWire,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
)

from .._masking import iter_nodes
from .._redaction import SecretScrubber, credential_values, redact_for_plugin, secret_values
from ._queue import PluginQueue, RunBridge

if TYPE_CHECKING:
    from .._host import PluginHost
    from .._supervisor import PluginHandle

logger = logging.getLogger("plugbox.runtime")
DRAIN_TIMEOUT_S = 2.0  # sending a full queue to a healthy plugin takes well under a second
FINISH_TIMEOUT_S = 10.0  # a snapshot is in-memory work; a plugin slower than this is broken

Messages = list[dict[str, Any]]
MessagesProvider = Callable[[], Messages]  # the contract's `() -> list[dict]`
_providers: dict[str, MessagesProvider] = {}  # open session id -> its run's provider


def _no_messages() -> Messages:
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
    handle: PluginHandle | None = None
    open_error: PluginError | None = None
    scrubber: SecretScrubber = field(default_factory=SecretScrubber)

    def attach(self, task: Any) -> None:
        """The contract's hook: the run's one observer joins `task` (a pipecat PipelineWorker)."""
        self.bridge.attach(task)

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        """Drain the queue, then ask for the plugin's snapshot under `FINISH_TIMEOUT_S`.

        Raises the plugin's `PluginError` when its session never opened, its process died or
        restarted during the call (`PluginCrashed`), or it answers too late (`PluginTimeout`).
        """
        queue, handle = self.queue, self.handle
        if queue is None or handle is None:
            raise self.open_error or PluginError("session was never opened", plugin=self.name)
        try:
            await queue.drain(DRAIN_TIMEOUT_S)
            lost = queue.failure or queue.check()
            if lost is not None:
                queue.lost_with_process()
                raise lost
            params = RuntimeFinishParams(queue.session_id, gathered_context, queue.dropped)
            try:
                result: RuntimeFinishResult = await handle.call(
                    Method.RUNTIME_FINISH,
                    params,
                    result_type=RuntimeFinishResult,
                    timeout=FINISH_TIMEOUT_S,
                )
            except PluginCrashed:
                queue.lost_with_process()
                raise
            queue.finished()
        finally:
            _providers.pop(queue.session_id, None)
        if queue.dropped:
            logger.warning("plugin %r: %d live events dropped", self.name, queue.dropped)
        return result.snapshot

    def delivery(self) -> dict[str, int]:
        """Delivery figures for the run's logs (`plugbox_live`)."""
        if self.queue is None:
            return {"delivered": 0, "dropped": 0}
        return {"delivered": self.queue.delivered, "dropped": self.queue.dropped}


async def create_runtime_sessions(
    context: IntegrationRuntimeContext, *, plugins: PluginHost
) -> list[HostRuntimeSession]:
    """Open one session per runtime plugin with a node of its types in the run's graph.

    Which of its nodes are enabled is the plugin's business (the contract names no field).
    """
    registry = plugins.registry
    if not registry.packages():
        await registry.refresh()
    plugins.scrubber.add(secret_values(context.workflow_graph or {}, registry.sensitive_fields))
    plugins.scrubber.add(credential_values(context.user_config or {}))
    wanted = _plugins_with_nodes(context.workflow_graph or {}, plugins)
    bridge = RunBridge(context.workflow_run_id)
    opened = await _open_all(wanted, context, bridge, plugins)
    sessions = [session for name in wanted if (session := opened[name]) is not None]
    for session in sessions:
        if session.queue is not None:
            plugins.spawn(session.queue.pump)
    return sessions


async def _open_all(
    wanted: list[str], context: IntegrationRuntimeContext, bridge: RunBridge, plugins: PluginHost
) -> dict[str, HostRuntimeSession | None]:
    """Open concurrently under one host-wide deadline; a late plugin misses this call.

    The opens run in the host's task group, not under a cancel scope: cancelling a plugin that is
    still starting would orphan its process, so a late one finishes in the background (warm for
    the next call) while this call goes on without it.
    """
    bound = plugins.config.session_open_timeout_s
    opened: dict[str, HostRuntimeSession | None] = {}
    failures: list[BaseException] = []
    all_done = anyio.Event()

    async def open_one(name: str) -> None:
        try:
            opened.setdefault(name, await _open(name, context, bridge, plugins))
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
            handle = plugins.get(name)
            opened[name] = HostRuntimeSession(
                name, bridge, None, handle, open_error=late, scrubber=plugins.scrubber
            )
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
    name: str, context: IntegrationRuntimeContext, bridge: RunBridge, plugins: PluginHost
) -> HostRuntimeSession | None:
    session_id = f"{context.workflow_run_id}-{name}-{uuid.uuid4().hex[:8]}"
    wire = _context_for(name, context, plugins)
    handle = plugins.get(name)
    handle.set_request_handler(
        Method.CONTEXT_MESSAGES, _answer_context_messages, params_type=ContextMessagesParams
    )
    _providers[session_id] = context.context_messages_provider
    try:
        opened: RuntimeOpenResult = await handle.call(
            Method.RUNTIME_OPEN, RuntimeOpenParams(session_id, wire), result_type=RuntimeOpenResult
        )
    except PluginError as exc:
        logger.error("plugin %r: runtime.open failed: %s", name, exc)
        _providers.pop(session_id, None)
        return HostRuntimeSession(
            name, bridge, None, handle, open_error=exc, scrubber=plugins.scrubber
        )
    if not opened.sessions:
        _providers.pop(session_id, None)
        return None
    wanted = frozenset(opened.subscriptions) if opened.subscriptions is not None else None
    generation = handle.starts
    queue = PluginQueue(
        name,
        session_id,
        partial(handle.notify, Method.RUNTIME_EVENTS),
        subscriptions=wanted,
        check=partial(_lost, handle, generation),
    )
    bridge.add(queue)
    return HostRuntimeSession(name, bridge, queue, handle, scrubber=plugins.scrubber)


def _context_for(
    name: str, context: IntegrationRuntimeContext, plugins: PluginHost
) -> RuntimeContextWire:
    """The run's context as plugin `name` may see it: others' secrets and credentials masked."""
    registry = plugins.registry
    info = registry.get_package(name)
    own_types = info.type_names if info else []

    def redact(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        redacted: dict[str, Any] = redact_for_plugin(
            value, own_types=own_types, sensitive=registry.sensitive_fields
        )
        return redacted

    return RuntimeContextWire(
        workflow_run_id=context.workflow_run_id,
        workflow_run=redact(context.workflow_run),
        workflow_graph=redact(context.workflow_graph),
        run_definition=redact(context.run_definition),
        user_config=_masked_user_config(context.user_config, redact),
        is_realtime=context.is_realtime,
    )


def _lost(handle: PluginHandle, generation: int) -> PluginError | None:
    """The error when the process that holds the session is gone (crashed or restarted)."""
    if handle.starts == generation and handle.state.value == "ready":
        return None
    return handle.last_error or PluginError(
        "the plugin process holding this live session stopped", plugin=handle.name
    )


def _masked_user_config(
    config: dict[str, Any] | None, redact: Callable[[dict[str, Any] | None], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """Provider credentials are masked: wrapped so the redactor sees a `user_config` key."""
    if config is None:
        return None
    wrapped = redact({"user_config": config}) or {}
    masked: dict[str, Any] = wrapped["user_config"]
    return masked


async def _answer_context_messages(params: ContextMessagesParams) -> ContextMessagesResult:
    """`context.messages` from a plugin: its run's provider, found by the session id."""
    provider = _providers.get(params.session_id)
    if provider is None:
        raise InvalidParams(f"no open live session {params.session_id!r}")
    return ContextMessagesResult(messages=[dict(message) for message in provider()])
