"""Live call layer: one bridge per run — event numbering, bounded per-plugin queues, pumps.

Contract: `emit(kind, t_ms, data)` is called from the observer and never blocks or awaits: it
numbers the event and offers it to every plugin channel subscribed to its kind; a full channel
drops the event and counts it. One pump task per channel sends queued events in batches as
`runtime.events` notifications; a slow or dead plugin only fills (and overflows) its own queue.
`flush()` waits, bounded, for the pumps to send what is queued before the call-finish snapshot.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from sdk.protocol import LiveEvent, Method, PluginError, RuntimeEventsParams

from .._supervisor import PluginHandle

logger = logging.getLogger("plugbox.runtime")
QUEUE_CAPACITY = 10_000  # events held per plugin: ~1 minute of a busy call
BATCH_SIZE = 500  # events per notification: one frame, far below the frame size limit


@dataclass
class Channel:
    """One plugin's share of a run's events."""

    plugin: str
    handle: PluginHandle
    session_id: str
    subscriptions: frozenset[str] | None
    capacity: int = QUEUE_CAPACITY
    queue: deque[LiveEvent] = field(default_factory=deque)
    delivered: int = 0
    dropped: int = 0
    failure: PluginError | None = None
    generation: int = 0  # the plugin process's start count when the session was opened
    ready: anyio.Event = field(default_factory=anyio.Event)
    idle: anyio.Event = field(default_factory=anyio.Event)
    closed: bool = False

    def offer(self, event: LiveEvent) -> None:
        if self.subscriptions is not None and event.kind not in self.subscriptions:
            return
        if self.failure is not None or len(self.queue) >= self.capacity:
            self.dropped += 1
            return
        self.queue.append(event)
        self.ready.set()

    def lost(self) -> PluginError | None:
        """The error when the process that holds this session is gone (crashed or restarted)."""
        handle = self.handle
        if handle.starts == self.generation and handle.state.value == "ready":
            return None
        return handle.last_error or PluginError(
            "the plugin process holding this session stopped", plugin=self.plugin
        )

    def take(self, limit: int) -> list[LiveEvent]:
        count = min(limit, len(self.queue))
        return [self.queue.popleft() for _ in range(count)]


class RunBridge:
    """Numbers a run's events and fans them out to its plugins' channels."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.channels: list[Channel] = []
        self.emitted = 0
        self.observer: Any = None  # the pipecat observer, once attached
        self._attached_to: set[int] = set()

    def emit(self, kind: str, t_ms: float, data: dict[str, Any]) -> None:
        self.emitted += 1
        event = LiveEvent(kind, self.emitted, t_ms, data)
        for channel in self.channels:
            channel.offer(event)

    def attach(self, task: Any) -> None:
        """Register this run's single observer on a pipecat worker (idempotent per worker)."""
        if id(task) in self._attached_to:
            return
        from ._observer import BridgeObserver  # pipecat is imported only when a call attaches

        if self.observer is None:
            self.observer = BridgeObserver(self.emit)
        task.add_observer(self.observer)
        self._attached_to.add(id(task))

    async def pump(self, channel: Channel) -> None:
        """Send the channel's events until it is closed and empty, or the plugin fails."""
        while True:
            if not channel.queue:
                channel.idle.set()
                if channel.closed:
                    return
                await channel.ready.wait()
                channel.ready = anyio.Event()
                continue
            channel.idle = anyio.Event()
            batch = channel.take(BATCH_SIZE)
            params = RuntimeEventsParams(channel.session_id, batch, channel.dropped)
            try:
                lost = channel.lost()
                if lost is not None:
                    raise lost  # never restart a plugin mid-call: its session is gone
                await channel.handle.notify(Method.RUNTIME_EVENTS, params)
            except PluginError as exc:
                channel.failure = exc
                channel.dropped += len(batch) + len(channel.queue)
                channel.queue.clear()
                logger.warning("plugin %r stopped receiving live events: %s", channel.plugin, exc)
                channel.idle.set()
                return
            channel.delivered += len(batch)

    async def flush(self, channel: Channel, timeout: float) -> None:
        """Wait (at most `timeout`) until the channel's queue has been sent."""
        channel.closed = True
        channel.ready.set()
        with anyio.move_on_after(timeout):
            await channel.idle.wait()
        if channel.queue:
            channel.dropped += len(channel.queue)
            logger.warning(
                "plugin %r: %d live events not delivered before call end",
                channel.plugin,
                len(channel.queue),
            )
            channel.queue.clear()
