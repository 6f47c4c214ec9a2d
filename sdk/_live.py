"""Server layer: a plugin's side of live calls — `runtime.open`, `runtime.events`, `runtime.finish`.

Contract: `LiveCalls.open` builds the runtime context from the wire, asks the package's factory for
its sessions, binds their `context_messages` to the host (`context.messages` on the wire) and
attaches them to one shadow task when any of them asks for one (pipecat is imported only then).
`events` delivers a batch to every session of the call, shadow frames to the shadow task first, in
order; a session's failure is logged and counted (`event_errors`), never stops the others.
`finish` ends the shadow task, refreshes the synchronous message view and merges every session's
snapshot, which must be strict JSON. `PluginServer` routes the three methods here.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _calls
from ._calls import call_author
from ._contexts import IntegrationRuntimeContext, SyncMessages
from ._package import IntegrationPackageSpec
from ._runtime import IntegrationRuntimeSession
from ._views import DefinitionView, graph_view, run_view, user_config_view
from .protocol import (
    SHADOW_EVENT_KINDS,
    ContextMessagesParams,
    ContextMessagesResult,
    Method,
    RpcSession,
    RuntimeEventsParams,
    RuntimeFinishParams,
    RuntimeFinishResult,
    RuntimeOpenParams,
    RuntimeOpenResult,
    SecretScrubber,
)

if TYPE_CHECKING:
    from ._shadow import ShadowTask

logger = logging.getLogger("plugbox.sdk.server")
CONTEXT_MESSAGES_TIMEOUT_S = 10.0


class LiveCalls:
    """The live calls (by session id) of one served package."""

    def __init__(self, redactor: SecretScrubber, package: IntegrationPackageSpec | None) -> None:
        self.redactor = redactor
        self.event_errors = 0
        self.session: RpcSession | None = None
        nodes = package.nodes if package else ()
        self._sensitive = {node.type_name: node.sensitive_fields for node in nodes}
        self._models = {node.type_name: node.data_model for node in nodes}
        self._runs: dict[str, list[IntegrationRuntimeSession]] = {}
        self._shadows: dict[str, ShadowTask] = {}
        self._messages: dict[str, SyncMessages] = {}

    async def open(
        self, package: IntegrationPackageSpec, params: RuntimeOpenParams
    ) -> RuntimeOpenResult:
        factory = package.create_runtime_sessions
        if factory is None:
            return RuntimeOpenResult(sessions=[], subscriptions=[])
        wire = params.context
        self.redactor.add_from_nodes(_graph_nodes(wire.workflow_graph), self._sensitive)
        fetch = partial(self._context_messages, params.session_id)
        messages = SyncMessages(fetch)
        context = IntegrationRuntimeContext(
            workflow_run_id=wire.workflow_run_id,
            workflow_run=run_view(wire.workflow_run),
            workflow_graph=graph_view(wire.workflow_graph, self._models),
            run_definition=DefinitionView(wire.run_definition or {}),
            user_config=user_config_view(wire.user_config),
            is_realtime=wire.is_realtime,
            context_messages_provider=messages,
        )
        sessions = list(await call_author(factory, context) or [])
        for session in sessions:
            if isinstance(session, IntegrationRuntimeSession):
                session.bind_context_messages(fetch)
        shadow = await _attach_all(sessions)
        self._runs[params.session_id] = sessions
        self._messages[params.session_id] = messages
        if shadow is not None:
            self._shadows[params.session_id] = shadow
        return RuntimeOpenResult(
            sessions=[str(getattr(s, "name", type(s).__name__)) for s in sessions],
            subscriptions=_union_subscriptions(sessions),
            shadow=shadow is not None,
        )

    async def _context_messages(self, session_id: str) -> list[dict[str, Any]]:
        assert self.session is not None
        result: ContextMessagesResult = await self.session.request(
            Method.CONTEXT_MESSAGES,
            ContextMessagesParams(session_id=session_id),
            result_type=ContextMessagesResult,
            timeout=CONTEXT_MESSAGES_TIMEOUT_S,
        )
        return result.messages

    async def events(self, params: RuntimeEventsParams) -> None:
        events = params.events
        shadow = self._shadows.get(params.session_id)
        if any(event.kind in SHADOW_EVENT_KINDS for event in events):
            if shadow is not None:
                await shadow.deliver(events)  # in order: notifications run one at a time
            events = [event for event in events if event.kind not in SHADOW_EVENT_KINDS]
        if not events:
            return
        for session in self._runs.get(params.session_id, []):
            try:
                if isinstance(session, IntegrationRuntimeSession):
                    await session.on_events(events)
            except Exception:  # a session's bug must not stop the others or the reader
                self.event_errors += 1
                logger.exception("runtime session %r failed on an event batch", session)

    async def finish(self, params: RuntimeFinishParams) -> RuntimeFinishResult:
        sessions = self._runs.pop(params.session_id, [])
        messages = self._messages.pop(params.session_id, None)
        shadow = self._shadows.pop(params.session_id, None)
        if shadow is not None:
            await shadow.finish()  # every frame before this request was delivered already
            logger.info("shadow task of %s: %s", params.session_id, shadow.report())
        if messages is not None and sessions:
            await messages.refresh()  # the sync provider answers from this inside the sessions
        merged: dict[str, Any] = {}
        for session in sessions:
            try:
                snapshot = await session.on_call_finished(gathered_context=params.gathered_context)
            except Exception:  # the reference: one failing session is logged, others go on
                logger.exception("runtime session %r failed in on_call_finished", session)
                continue
            if snapshot:
                merged.update(snapshot)
        # Looked up on the module at each call: a hostile test fixture switches the check off.
        return RuntimeFinishResult(snapshot=_calls.strict_json(merged, "snapshot") or None)


def _graph_nodes(graph: dict[str, Any] | None) -> list[dict[str, Any]]:
    nodes = (graph or {}).get("nodes") or []
    values = nodes.values() if isinstance(nodes, dict) else nodes
    return [node for node in values if isinstance(node, dict)]


async def _attach_all(sessions: list[Any]) -> ShadowTask | None:
    """Every session's `attach(task)` with the run's one shadow task; None if nothing attached
    (then pipecat is never imported for it). The shadow task's module is imported on the first
    live call, not at start: a start that serves no live call never needs it."""
    from ._shadow import ShadowTask

    shadow = ShadowTask()
    for session in sessions:
        try:
            session.attach(shadow)
        except Exception:  # the reference logs a failing attach; the call goes on
            logger.exception("runtime session %r failed in attach", session)
    if not shadow.active:
        return None
    await shadow.load()
    await shadow.setup()
    return shadow


def _union_subscriptions(sessions: list[Any]) -> list[str] | None:
    kinds: set[str] = set()
    for session in sessions:
        wanted = getattr(session, "subscriptions", None)
        if wanted is None:
            return None
        kinds |= set(wanted)
    return sorted(kinds)
