"""Shadow layer: the `ShadowTask` a plugin's sessions attach to, standing in for pipecat's task.

Contract: in process, a package's `session.attach(task)` registers pipecat observers and event
handlers on the live `PipelineWorker`. Across the process boundary the server hands every session
of a run one `ShadowTask` instead, supporting what packages use: `add_observer` /
`remove_observer`, `turn_tracking_observer` (pipecat's real `TurnTrackingObserver` when pipecat is
importable here, else `_turns.StandInTurnTracker`, the same rules on stand-in frames),
`event_handler` / `add_event_handler` for the task events the host forwards (`on_pipeline_started`,
`on_pipeline_finished`, `on_pipeline_error`; handlers get `(task, frame)`), and processor proxies
(`processor(name)`, `processors`) whose `.name` is the host processor's. `deliver(events)` rebuilds
each `pipecat.frame` event (`_rebuild`) and awaits every observer's `on_push_frame` with it, one
frame at a time in the host's push order; a frame class unknown here is skipped and counted.
`finish()` runs each observer's `cleanup()` (which waits for its event-handler tasks), so a
session's `on_call_finished` sees the whole call. An observer that raises is logged and counted and
keeps receiving frames (in process, pipecat would silently stop feeding it).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio

from ._rebuild import Rebuilder
from ._turns import StandInTurnTracker
from .protocol import EventKind, LiveEvent
from .protocol import FrameWire as fw

logger = logging.getLogger("plugbox.sdk.shadow")
TASK_EVENTS = ("on_pipeline_started", "on_pipeline_finished", "on_pipeline_error")


class ProcessorProxy:
    """A host processor, by name: what `FramePushed.source` / `.destination` hold here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ProcessorProxy({self.name!r})"


class ShadowTask:
    """What `attach(task)` receives in a plugin process: one per run, shared by its sessions."""

    def __init__(self, rebuilder: Rebuilder | None = None) -> None:
        self._rebuilder = rebuilder  # loaded on first use: pipecat is imported only when needed
        self.observers: list[Any] = []
        self.handlers: dict[str, list[Callable[..., Any]]] = {name: [] for name in TASK_EVENTS}
        self.frames_delivered = 0
        self.frames_skipped: Counter[str] = Counter()  # frame classes unknown in this process
        self.observer_errors = 0
        self._processors: dict[str, ProcessorProxy] = {}
        self._turns: Any = None
        self._task_manager: Any = None

    @property
    def rebuilder(self) -> Rebuilder:
        """Loaded on first use. Read during `attach` (`turn_tracking_observer`) that is cheap: a
        package whose observers subclass pipecat's has imported pipecat already."""
        if self._rebuilder is None:
            self._rebuilder = Rebuilder.shared()
        return self._rebuilder

    async def load(self) -> None:
        """Load the rebuilder in a worker thread: importing pipecat on the event loop would leave
        the plugin's `ping` unanswered for seconds."""
        if self._rebuilder is None:
            self._rebuilder = await anyio.to_thread.run_sync(Rebuilder.shared)

    # -- what packages call ---------------------------------------------------------------------

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    async def remove_observer(self, observer: Any) -> None:
        if observer in self.observers:
            self.observers.remove(observer)

    @property
    def turn_tracking_observer(self) -> Any:
        """pipecat's `TurnTrackingObserver`, fed the same frames as the observers."""
        if self._turns is None:
            if self.rebuilder.with_pipecat:
                module = importlib.import_module("pipecat.observers.turn_tracking_observer")
                self._turns = module.TurnTrackingObserver()
            else:
                self._turns = StandInTurnTracker()
        return self._turns

    def add_event_handler(self, name: str, handler: Callable[..., Any]) -> None:
        if name not in self.handlers:
            logger.warning("shadow task: event %r is not forwarded by the host", name)
        self.handlers.setdefault(name, []).append(handler)

    def event_handler(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.add_event_handler(name, handler)
            return handler

        return decorator

    def processor(self, name: str | None) -> ProcessorProxy | None:
        """The proxy of the host processor called `name` (one object per name)."""
        if name is None:
            return None
        found = self._processors.get(name)
        if found is None:
            found = self._processors[name] = ProcessorProxy(name)
        return found

    @property
    def processors(self) -> list[ProcessorProxy]:
        """The host processors seen so far, in order of first appearance."""
        return list(self._processors.values())

    # -- what the server calls ------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Something is attached: the host should send frames."""
        return bool(self._receivers() or any(self.handlers.values()))

    async def setup(self) -> None:
        """Give each pipecat observer a task manager, as the worker does before the call."""
        if not self.rebuilder.with_pipecat:
            return
        try:
            module = importlib.import_module("pipecat.utils.asyncio.task_manager")
            self._task_manager = module.TaskManager()
        except Exception:  # an older pipecat: observers run without one
            return
        for observer in self._receivers():
            setup = getattr(observer, "setup", None)
            if setup is not None:
                await self._guard(setup(self._task_manager), observer)

    async def deliver(self, events: list[LiveEvent]) -> None:
        """Replay shadow events in order: frames to observers, task events to handlers."""
        for event in events:
            if event.kind == EventKind.FRAME:
                await self._frame(event.data)
            elif event.kind == EventKind.TASK_EVENT:
                await self._task_event(event.data)

    async def finish(self) -> None:
        """The call ended: each observer's `cleanup()` (it waits for its handler tasks)."""
        for observer in self._receivers():
            cleanup = getattr(observer, "cleanup", None)
            if cleanup is not None:
                await self._guard(cleanup(), observer)

    def report(self) -> dict[str, Any]:
        return {
            "frames_delivered": self.frames_delivered,
            "frames_skipped": dict(self.frames_skipped),
            "observer_errors": self.observer_errors,
        }

    # -- internals ------------------------------------------------------------------------------

    def _receivers(self) -> list[Any]:
        return [*self.observers, *([self._turns] if self._turns is not None else [])]

    async def _frame(self, payload: dict[str, Any]) -> None:
        pushed = self.rebuilder.pushed(payload, self.processor)
        if pushed is None:
            self.frames_skipped[str(payload.get(fw.CLS))] += 1
            return
        self.frames_delivered += 1
        for observer in self._receivers():
            await self._guard(observer.on_push_frame(pushed), observer)

    async def _task_event(self, data: dict[str, Any]) -> None:
        name = str(data.get("name"))
        raw = data.get("frame")
        frame = self.rebuilder.frame(raw, self.processor) if isinstance(raw, dict) else None
        if name == "on_pipeline_started":
            for observer in self._receivers():
                started = getattr(observer, "on_pipeline_started", None)
                if started is not None:
                    await self._guard(started(), observer)
        for handler in list(self.handlers.get(name, ())):
            try:
                outcome = handler(self, frame)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # pipecat logs a handler's exception and goes on; so do we
                self.observer_errors += 1
                logger.exception("shadow task: handler for %r failed", name)

    async def _guard(self, outcome: Any, observer: Any) -> None:
        try:
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            self.observer_errors += 1
            logger.exception("shadow task: observer %r failed", type(observer).__name__)
