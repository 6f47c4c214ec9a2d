"""Boundary layer: a live session, bound to the one plugin process that opened it.

Contract: a `LiveSession` is what `PluginClient.open_live` returns. Everything it sends goes to the
process that answered `runtime.open` and to no other: when that process crashes, is stopped or is
replaced, the session has ended (`ended` holds why, `lost()` says so) and every later `send` or
`finish` raises that error instead of starting a fresh process that never heard of the session.
The run's `context.messages` provider is reachable by the plugin only while the session is open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sdk.protocol import (
    Calls,
    ConnectionClosed,
    InvalidParams,
    LiveEvent,
    Notifications,
    PluginError,
    RuntimeEventsParams,
    RuntimeFinishParams,
    SecretScrubber,
)

from ._results import check_result

if TYPE_CHECKING:
    from .._process import PluginProcess
    from ._client import PluginClient

Messages = list[dict[str, Any]]
MessagesProvider = Callable[[], Messages]  # the contract's `() -> list[dict]`


class UnsendableEvents(PluginError):
    """A batch of live events the wire cannot carry (a lone surrogate): that batch only."""


class LiveSession:
    """One plugin's live session in one run, on one process."""

    def __init__(
        self,
        client: PluginClient,
        session_id: str,
        process: PluginProcess,
        *,
        subscriptions: frozenset[str] | None,
        provider: MessagesProvider,
        secrets: SecretScrubber,
    ) -> None:
        self.client = client
        self.id = session_id
        self.process = process
        self.subscriptions = subscriptions  # event kinds wanted; None means every kind
        self.shadow = False  # its sessions attached observers to the shadow task: send frames
        self.provider = provider
        self.secrets = secrets
        self.ended: PluginError | None = None  # why the session ended before `finish`
        self.closed = False

    @property
    def plugin(self) -> str:
        return self.client.name

    def lost(self) -> PluginError | None:
        """The error when the process holding this session is gone, else None."""
        if self.ended is None and self.client.handle.process is not self.process:
            self.end(
                ConnectionClosed(
                    "the plugin process holding this live session stopped", plugin=self.plugin
                )
            )
        return self.ended

    def end(self, error: PluginError) -> None:
        """The process ended: forget the session; later sends and `finish` raise `error`."""
        if self.ended is None and not self.closed:
            self.ended = error
        self.close()

    def close(self) -> None:
        """Stop serving `context.messages` for this session (idempotent)."""
        self.closed = True
        self.client.forget(self.id)

    async def send(self, events: list[LiveEvent], dropped: int) -> None:
        """One `runtime.events` notification, to the session's process only."""
        lost = self.lost()
        if lost is not None:
            raise lost
        params = RuntimeEventsParams(self.id, events, dropped)
        try:
            await self.client.handle.notify(
                Notifications.RUNTIME_EVENTS, params, process=self.process
            )
        except InvalidParams as exc:  # only raised before anything was written
            raise UnsendableEvents(str(exc), plugin=self.client.name) from None

    async def finish(
        self, gathered_context: dict[str, Any], dropped: int, *, timeout: float
    ) -> dict[str, Any] | None:
        """The plugin's snapshot, checked (strict JSON, size, depth) and scrubbed; closes."""
        try:
            lost = self.lost()
            if lost is not None:
                raise lost
            params = RuntimeFinishParams(self.id, self.client.redact(gathered_context), dropped)
            result = await self.client.request(
                Calls.RUNTIME_FINISH,
                params,
                timeout=timeout,
                process=self.process,
                secrets=self.secrets,
            )
        finally:
            self.close()
        if result.snapshot is None:
            return None
        return dict(self.secrets.scrub(check_result(self.plugin, result.snapshot)))
