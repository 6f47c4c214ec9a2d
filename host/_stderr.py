"""Supervisor layer: a plugin's stderr, read continuously into the host's logging.

Contract: the pipe is always drained (a chatty plugin can never block on a full pipe); each line
is cut at `MAX_LINE` bytes; a JSON line from the SDK (`{"level", "msg", "logger", ...}`) is logged
at its level with its fields, any other line as-is at INFO, on `plugbox.plugins.<name>`. The last
`TAIL_LINES` lines are kept for crash reports. At most `LINES_PER_S` lines a second are processed
(a `Budget`, shared by the plugin's `log` notifications): the rest are dropped having only been
counted, so a flood costs the host's loop a newline count per chunk, and a summary line says how
many were dropped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

import anyio
import anyio.abc

from sdk.protocol import SecretScrubber

MAX_LINE = 8 * 1024  # longer lines are cut: a log line, not a data channel
TAIL_LINES = 40  # enough context for a traceback in a crash report
_TAIL_LINE_CHARS = 500
LINES_PER_S = 200  # a plugin's log output past this is dropped and counted (issue #14)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class Budget:
    """At most `per_s` items a second; `take()` says whether one may pass, `dropped` counts."""

    def __init__(self, per_s: int = LINES_PER_S) -> None:
        self.per_s = per_s
        self.dropped = 0
        self._window = 0.0
        self._used = 0
        self._reported = 0

    def take(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._used = now, 0
        if self._used < self.per_s:
            self._used += 1
            return True
        self.dropped += 1
        return False

    def has_room(self) -> bool:
        return time.monotonic() - self._window >= 1.0 or self._used < self.per_s

    def drop(self, count: int) -> None:
        self.dropped += count

    def unreported(self) -> int:
        """Drops since the last call (for one summary line per window)."""
        fresh, self._reported = self.dropped - self._reported, self.dropped
        return fresh


class StderrPump:
    """Reads one plugin's stderr until EOF."""

    def __init__(
        self, plugin: str, scrubber: SecretScrubber | None = None, budget: Budget | None = None
    ) -> None:
        self.plugin = plugin
        self.budget = budget or Budget()
        self.scrubber = scrubber or SecretScrubber()
        self.logger = logging.getLogger(f"plugbox.plugins.{plugin}")
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.lines = 0
        self.truncated = 0

    async def run(self, stream: anyio.abc.ByteReceiveStream) -> None:
        pending = bytearray()
        skipping = False  # inside an over-long line, dropping bytes up to its newline
        while True:
            try:
                chunk = await stream.receive(65536)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            pending += chunk
            *lines, rest = pending.split(b"\n")
            for index, line in enumerate(lines):
                if skipping:
                    skipping = False
                    continue
                if not self.budget.take():
                    self.budget.drop(len(lines) - index - 1)  # the rest of the chunk: counted
                    break
                self._emit(bytes(line[:MAX_LINE]))
            self._report_drops()
            pending = bytearray(rest)
            if len(pending) > MAX_LINE:
                self._emit(bytes(pending[:MAX_LINE]))
                self.truncated += 1
                pending.clear()
                skipping = True
        if pending and not skipping:
            self._emit(bytes(pending))

    def _emit(self, raw: bytes) -> None:
        text = self.scrubber.scrub_text(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if not text:
            return
        self.lines += 1
        record = _parse(text)
        if record is None:
            self.tail.append(text[:_TAIL_LINE_CHARS])
            self.logger.info("%s", text)
            return
        level, message, fields = record
        self.tail.append(f"{logging.getLevelName(level)}: {message}"[:_TAIL_LINE_CHARS])
        if "exc" in fields:
            self.tail.extend(str(fields["exc"]).splitlines()[-8:])
        self.logger.log(level, "%s", message, extra={"plugin_fields": fields})

    def _report_drops(self) -> None:
        if self.budget.dropped > self.budget._reported and self.budget.has_room():
            self.budget.take()
            fresh = self.budget.unreported()
            if fresh:
                self.logger.warning("%d log lines dropped (over %d/s)", fresh, self.budget.per_s)

    def tail_text(self) -> str:
        return "\n".join(self.tail)


def _parse(text: str) -> tuple[int, str, dict[str, object]] | None:
    if not text.startswith("{"):
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict) or "msg" not in payload:
        return None
    level = _LEVELS.get(str(payload.pop("level", "info")).lower(), logging.INFO)
    message = str(payload.pop("msg"))
    return level, message, payload
