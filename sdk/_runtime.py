"""Authoring layer: the runtime session a plugin returns from `create_runtime_sessions`.

Contract: in-process, a session's `attach(task)` registers observers on the pipecat task. Across the
process boundary the task stays in the host, so a plugbox session either declares the live event
kinds it wants (`subscriptions`, validated at class creation) and receives them as plain
`LiveEvent`s through `on_event` / `on_events`, or adds pipecat observers to the `ShadowTask` its
`attach(task)` receives (`_shadow.py`): they get the call's frames, rebuilt in the plugin.
`on_call_finished(gathered_context=...)` returns the snapshot dict (or None), and
`context_messages()` asks the host for the LLM context.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from ._errors import AuthoringError, owner_of
from .protocol._events import ALL_EVENT_KINDS
from .protocol._methods import LiveEvent

_Provider = Callable[[], Awaitable[list[dict[str, Any]]]]


class IntegrationRuntimeSession:
    """Base class of plugin-side runtime sessions (one per run, usually)."""

    name: str = "session"
    subscriptions: ClassVar[frozenset[str] | None] = None  # None: every event kind
    _context_messages: _Provider | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wanted = cls.__dict__.get("subscriptions")
        if wanted is None:
            return
        unknown = sorted(set(wanted) - ALL_EVENT_KINDS)
        if unknown:
            raise AuthoringError(
                f"subscriptions names unknown event kinds {unknown}",
                fix=f"use kinds from sdk.protocol.EventKind: {sorted(ALL_EVENT_KINDS)}",
                owner=owner_of(cls),
            )
        cls.subscriptions = frozenset(wanted)

    def attach(self, task: Any) -> None:
        """The contract's hook. `task` is the run's `ShadowTask`: observers added to it receive
        the call's frames, rebuilt in this process (see `sdk/_shadow.py`)."""

    def wants(self, kind: str) -> bool:
        return self.subscriptions is None or kind in self.subscriptions

    def on_event(self, event: LiveEvent) -> Awaitable[None] | None:
        """One live event of a subscribed kind. Override; may be a coroutine function."""
        return None

    async def on_events(self, events: list[LiveEvent]) -> None:
        """A batch of events in order; the default hands each to `on_event`."""
        for event in events:
            if self.wants(event.kind):
                outcome = self.on_event(event)
                if inspect.isawaitable(outcome):
                    await outcome

    async def on_call_finished(self, *, gathered_context: dict[str, Any]) -> dict[str, Any] | None:
        """The call-finish snapshot, persisted in the run's logs. None: nothing to persist."""
        return None

    async def context_messages(self) -> list[dict[str, Any]]:
        """The call's LLM context messages, answered by the host."""
        provider = self._context_messages
        return await provider() if provider is not None else []

    def bind_context_messages(self, provider: _Provider) -> None:
        """Called by the plugin server: where `context_messages()` asks."""
        self._context_messages = provider
