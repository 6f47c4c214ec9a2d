"""Shadow layer: `turn_tracking_observer` for plugins without pipecat (pipecat's rules, ported).

Contract: `StandInTurnTracker` follows pipecat 1.14's `TurnTrackingObserver` on stand-in frames
(read by class name): the first turn starts at the `StartFrame`; a user starting to speak ends the
turn (interrupted if the bot was speaking) and starts the next; a turn ends 2.5 s after the bot
stopped speaking, or at `EndFrame`/`CancelFrame` (interrupted). `on_turn_started(tracker, number)`
and `on_turn_ended(tracker, number, duration_s, interrupted)` fire as tasks, as pipecat's do;
durations come from the frames' pipeline-clock timestamps; `cleanup()` waits for the handlers.
With pipecat in the plugin's venv the shadow task uses pipecat's own observer instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("plugbox.sdk.shadow")
TURN_END_TIMEOUT_S = 2.5  # pipecat's default


class StandInTurnTracker:
    """pipecat's turn tracking on stand-in frames."""

    def __init__(self, turn_end_timeout_secs: float = TURN_END_TIMEOUT_S) -> None:
        self.handlers: dict[str, list[Callable[..., Any]]] = {
            "on_turn_started": [],
            "on_turn_ended": [],
        }
        self._timeout = turn_end_timeout_secs
        self._count = 0
        self._active = self._bot_speaking = self._bot_spoke = False
        self._started_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_event_handler(self, name: str, handler: Callable[..., Any]) -> None:
        self.handlers.setdefault(name, []).append(handler)

    def event_handler(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.add_event_handler(name, handler)
            return handler

        return decorator

    async def on_push_frame(self, data: Any) -> None:
        kind, ts = type(data.frame).__name__, int(data.timestamp)
        if kind == "StartFrame" and self._count == 0:
            self._start(ts)
        elif kind == "UserStartedSpeakingFrame":
            self._user_started(ts)
        elif kind == "BotStartedSpeakingFrame":
            self._bot_speaking = self._bot_spoke = True
            self._cancel_timer()
        elif kind == "BotStoppedSpeakingFrame" and self._bot_speaking:
            self._bot_speaking = False
            self._cancel_timer()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout, self._timed_out, ts)
        elif kind in {"EndFrame", "CancelFrame"}:
            self._cancel_timer()
            self._end(ts, interrupted=True)

    async def cleanup(self) -> None:
        self._cancel_timer()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _user_started(self, ts: int) -> None:
        if self._bot_speaking:
            self._cancel_timer()
            self._end(ts, interrupted=True)
            self._bot_speaking = False
            self._start(ts)
        elif self._active and self._bot_spoke:
            self._cancel_timer()
            self._end(ts, interrupted=False)
            self._start(ts)
        elif not self._active:
            self._start(ts)

    def _timed_out(self, ts: int) -> None:
        self._timer = None
        if self._active and not self._bot_speaking:
            self._end(ts, interrupted=False)

    def _start(self, ts: int) -> None:
        self._active, self._bot_spoke = True, False
        self._count += 1
        self._started_ns = ts
        self._fire("on_turn_started", self._count)

    def _end(self, ts: int, *, interrupted: bool) -> None:
        if not self._active:
            return
        self._active = False
        duration = (ts - self._started_ns) / 1_000_000_000
        self._fire("on_turn_ended", self._count, duration, interrupted)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, name: str, *args: Any) -> None:
        for handler in self.handlers.get(name, ()):
            task = asyncio.ensure_future(_run(handler, self, *args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _run(handler: Callable[..., Any], *args: Any) -> None:
    try:
        outcome = handler(*args)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:  # pipecat logs a handler's exception and goes on
        logger.exception("turn handler %r failed", handler)
