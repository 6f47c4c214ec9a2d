"""Live call layer: a run's event fan-out — bounded per-plugin queues and their batching pumps.

Contract: `RunBridge.emit(kind, t_ms, data)` is the observer's sink. It runs inside pipecat's
observer task, so it never awaits and never blocks: it numbers the event and `offer`s it to each
plugin queue subscribed to its kind; a full queue (or one whose plugin is gone) drops the event and
counts it. One pump per queue, run by the call (`open_call`), sends what is queued in batches
through its live session (the `runtime.events` notifications are the client's); a slow or dead
plugin only fills and overflows its own queue, never the pipeline's or another plugin's. After the
call `drain(timeout)` sends what is left (pipecat cancels observer tasks at teardown; the pumps
outlive them, not the call), bounded, then ends the pump and counts the rest as dropped; `end()`
is the call's teardown when nothing drained it. Every loss is also counted where it happens in
`plugbox_live_events_dropped_total{plugin, reason}`: `overflow`, `plugin_gone`, `deadline`,
`call_ended` (still queued when a call ended without its snapshot being asked), and
`process_died` for events already handed to a process that died before finishing the call (they
were in its pipe or its session: no snapshot has them).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from sdk.protocol import SHADOW_EVENT_KINDS, EventKind, LiveEvent, PluginError

from .._counters import COUNTERS, LIVE_DELIVERED, LIVE_DROPPED
from ..client import UnsendableEvents
from ._frames import FrameFilter, encode_frame, encode_lone_frame

logger = logging.getLogger("plugbox.runtime")
QUEUE_CAPACITY = 10_000  # events held per plugin: about a minute of a busy call
BATCH_SIZE = 500  # events per notification: one pipe write, far below the frame size limit
BATCH_WINDOW_S = 0.002  # a short wait after the first event groups a burst into one notification

Send = Callable[[list[LiveEvent], int], Awaitable[None]]  # (events, dropped so far)
Check = Callable[[], PluginError | None]  # the error when the session's process is gone


def _alive() -> PluginError | None:
    return None


class PluginQueue:
    """One plugin's share of a run's events: bounded, filtered by its subscriptions."""

    def __init__(
        self,
        plugin: str,
        session_id: str,
        send: Send,
        *,
        subscriptions: frozenset[str] | None = None,
        check: Check = _alive,
        capacity: int = QUEUE_CAPACITY,
        frames: FrameFilter | None = None,
    ) -> None:
        self.plugin, self.session_id = plugin, session_id
        self.subscriptions = subscriptions
        self.frames = frames  # the shadow task's selection; None: the plugin gets no frames
        self.capacity = capacity
        self.events: deque[LiveEvent] = deque()
        self.delivered = 0  # events handed to the plugin's pipe
        self.dropped = 0  # events lost: overflow, a dead plugin, or left after the drain
        self.failure: PluginError | None = None
        self.audio_over = 0  # audio frames dropped past the byte budget
        self._send, self.check = send, check
        self._ready, self._done = anyio.Event(), anyio.Event()
        self._idle = False  # the pump waits on `_ready` for the next event
        self._closed = False
        self.ended = False  # the call is over: nothing more is queued or sent
        self._scope: anyio.CancelScope | None = None  # the pump's, so the drain can end it

    def wants(self, kind: str) -> bool:
        if kind in SHADOW_EVENT_KINDS:
            return self.frames is not None
        return self.subscriptions is None or kind in self.subscriptions

    def offer(self, event: LiveEvent) -> None:
        """Queue an event without waiting; drop and count it when the queue is full."""
        # Once per plugin per event, inside pipecat's observer task: the accepted case first.
        events = self.events
        if len(events) < self.capacity and self.failure is None and not self.ended:
            events.append(event)
            if self._idle:  # only a waiting pump needs waking
                self._idle = False
                self._ready.set()
            return
        if self.ended:
            self._drop(1, "call_ended")
            return
        if self.dropped == 0 and self.failure is None:
            logger.warning("plugin %r is not keeping up: dropping live events", self.plugin)
        self._drop(1, "plugin_gone" if self.failure is not None else "overflow")

    async def pump(self) -> None:
        """Send queued events in batches until drained after the call, or the plugin fails."""
        try:
            with anyio.CancelScope() as self._scope:
                while not self._closed or self.events:
                    if not self.events:
                        self._ready, self._idle = anyio.Event(), True
                        await self._ready.wait()
                        continue
                    if len(self.events) < BATCH_SIZE and not self._closed:
                        await anyio.sleep(BATCH_WINDOW_S)
                    if not await self._send_batch():
                        break
        finally:
            self._done.set()

    async def _send_batch(self) -> bool:
        count = min(BATCH_SIZE, len(self.events))
        batch = [self.events.popleft() for _ in range(count)]
        try:
            lost = self.check()
            if lost is not None:
                raise lost  # never restart a plugin mid-call: the session lived in that process
            await self._send(batch, self.dropped)
        except anyio.get_cancelled_exc_class():
            # The drain's deadline or the call's end stopped this send: not delivered for sure.
            self._drop(len(batch), "call_ended" if self.ended else "deadline")
            raise
        except UnsendableEvents as exc:
            # An event the wire cannot carry (a lone surrogate): that batch only, not the session.
            self._drop(len(batch), "unencodable")
            logger.warning("plugin %r: live events dropped: %s", self.plugin, exc)
            return True
        except PluginError as exc:
            self._fail(exc, unsent=len(batch))
            return False
        self.delivered += len(batch)
        return True

    def _fail(self, exc: PluginError, *, unsent: int) -> None:
        self.failure = exc
        self._drop(unsent + len(self.events), "plugin_gone")
        self.events.clear()
        logger.warning("plugin %r stopped receiving live events: %s", self.plugin, exc)

    async def drain(self, timeout: float) -> None:
        """Close the queue and wait (at most `timeout`) until the pump has sent what is left.

        A pump still busy then (its plugin stopped reading) is cancelled: it ends with its call.
        """
        self._closed = True
        self._ready.set()
        with anyio.move_on_after(timeout):
            await self._done.wait()
        if self._scope is not None and not self._done.is_set():
            self._scope.cancel()
        if self.events:
            logger.warning(
                "plugin %r: %d live events not delivered before the call-finish deadline",
                self.plugin,
                len(self.events),
            )
            self._drop(len(self.events), "deadline")
            self.events.clear()

    def over_budget(self) -> None:
        """An audio frame past the plugin's byte budget: dropped, counted, warned about once."""
        if not self.audio_over:
            logger.warning("plugin %r: audio byte budget spent, audio frames dropped", self.plugin)
        self.audio_over += 1
        self._drop(1, "audio_budget")

    def end(self) -> None:
        """The call ended (drained or not): refuse more events and drop what is still queued.

        The caller cancels the pump (the call owns it); `offer` counts later events as gone.
        """
        self._closed = self.ended = True
        self._ready.set()
        if self.events:
            self._drop(len(self.events), "call_ended")
            self.events.clear()

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        COUNTERS.inc(LIVE_DROPPED, count, plugin=self.plugin, reason=reason)

    def lost_with_process(self) -> None:
        """The plugin died before finishing: what it was handed is lost with it."""
        lost, self.delivered = self.delivered, 0
        self._drop(lost, "process_died")

    def finished(self) -> None:
        """The plugin answered `runtime.finish`: what it was handed is delivered for good."""
        COUNTERS.inc(LIVE_DELIVERED, self.delivered, plugin=self.plugin)


class RunBridge:
    """One per run: numbers its events and fans them out to its plugins' queues."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.queues: list[PluginQueue] = []
        self.emitted = 0
        self.observer: Any = None  # the pipecat observer, once a session attached
        self.shadow: Any = None  # the frame observer, once a plugin with a shadow task attached
        self._routes: dict[str, list[PluginQueue]] = {}
        self._frame_routes: dict[type, list[PluginQueue]] = {}
        self._workers: set[int] = set()

    def add(self, queue: PluginQueue) -> None:
        self.queues.append(queue)
        self._routes.clear()
        self._frame_routes.clear()

    def emit(self, kind: str, t_ms: float, data: dict[str, Any]) -> None:
        """The observer's sink: number the event and offer it to the subscribed queues."""
        self.emitted += 1
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = [q for q in self.queues if q.wants(kind)]
        if route:
            event = LiveEvent(kind, self.emitted, t_ms, data)
            for queue in route:
                queue.offer(event)

    def emit_frame(self, pushed: Any) -> None:
        """The frame observer's sink: one `pipecat.frame` event per plugin that selected it."""
        cls = type(pushed.frame)
        route = self._frame_routes.get(cls)
        if route is None:
            route = self._frame_routes[cls] = [
                q for q in self.queues if q.frames is not None and q.frames.wants(cls)
            ]
        if not route:
            return
        payload, carried = encode_frame(pushed, audio=True)
        self.emitted += 1
        event = LiveEvent(EventKind.FRAME, self.emitted, pushed.timestamp / 1_000_000, payload)
        for queue in route:
            if carried and not queue.frames.spend(carried):  # type: ignore[union-attr]
                queue.over_budget()
                continue
            queue.offer(event)

    def emit_task_event(self, name: str, frame: Any, t_ms: float) -> None:
        """A task event the shadow tasks replay (`on_pipeline_started`, `on_pipeline_finished`)."""
        self.emit(EventKind.TASK_EVENT, t_ms, {"name": name, "frame": encode_lone_frame(frame)})

    def attach(self, worker: Any) -> None:
        """Register the run's observers on a pipecat worker; later calls join them."""
        if id(worker) in self._workers:
            return
        from ._observer import BridgeObserver, ShadowObserver, forward_task_events

        if self.observer is None:
            self.observer = BridgeObserver(self.emit)
        worker.add_observer(self.observer)
        if any(queue.frames is not None for queue in self.queues):
            if self.shadow is None:
                self.shadow = ShadowObserver(self.emit_frame)
            worker.add_observer(self.shadow)
            forward_task_events(worker, self.emit_task_event)
        self._workers.add(id(worker))
