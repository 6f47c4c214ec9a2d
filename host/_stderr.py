"""Supervisor layer: a plugin's stderr, read continuously into the host's logging.

Contract: the pipe is always drained (a chatty plugin can never block on a full pipe); each line
is cut at `MAX_LINE` bytes; a JSON line from the SDK (`{"level", "msg", "logger", ...}`) is logged
at its level with its fields, any other line as-is at INFO, on `plugbox.plugins.<name>`. The last
`TAIL_LINES` lines are kept for crash reports. At most `LINES_PER_S` lines and `BYTES_PER_S` bytes
a second are processed (a `Budget`; the supervisor gives its `log` notifications one too): the
rest are dropped having only been counted, so a flood costs the host's loop one newline count per
`READ_BYTES` read (no line is split out or decoded), and a summary line says how many were
dropped. At most `EMIT_BATCH` lines are logged per loop turn before the pump yields, and at most
one read is handled per loop turn (the reader may hold a large backlog that reads never wait on).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

import anyio
import anyio.abc
import anyio.lowlevel

from sdk.protocol import SecretScrubber

MAX_LINE = 8 * 1024  # longer lines are cut: a log line, not a data channel
TAIL_LINES = 40  # enough context for a traceback in a crash report
_TAIL_LINE_CHARS = 500
LINES_PER_S = 200  # a plugin's log output past this is dropped and counted (issue #14)
BYTES_PER_S = 256 * 1024  # ... and past this many bytes of it a second
READ_BYTES = 256 * 1024  # one read: a flood is counted a large chunk at a time
EMIT_BATCH = 4  # lines logged (scrubbed, parsed, written: ~0.1 ms each) per loop turn
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class Budget:
    """At most `per_s` items (and `bytes_per_s` bytes) a second; `take()` says whether one may
    pass, `dropped` counts those that did not."""

    def __init__(self, per_s: int = LINES_PER_S, bytes_per_s: int = BYTES_PER_S) -> None:
        self.per_s = per_s
        self.bytes_per_s = bytes_per_s
        self.dropped = 0
        self._window = 0.0
        self._used = 0
        self._used_bytes = 0
        self._reported = 0

    def take(self, size: int = 0) -> bool:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._used, self._used_bytes = now, 0, 0
        if self._used < self.per_s and self._used_bytes + size <= self.bytes_per_s:
            self._used += 1
            self._used_bytes += size
            return True
        self.dropped += 1
        return False

    def has_room(self) -> bool:
        if time.monotonic() - self._window >= 1.0:
            return True
        return self._used < self.per_s and self._used_bytes < self.bytes_per_s

    def refuse(self) -> bool:
        """Refuse (and count) one item when `take()` would refuse it now; take nothing otherwise.
        One cheap call: a flood's lines are refused this way before they are even decoded."""
        if time.monotonic() - self._window >= 1.0:
            return False
        if self._used < self.per_s and self._used_bytes <= self.bytes_per_s:
            return False
        self.dropped += 1
        return True

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
        self.yields = 0  # loop turns given up mid-read (the cap on work per turn at work)
        self._pending = bytearray()  # an unfinished line
        self._skipping = False  # inside an over-long line, dropping bytes up to its newline

    async def run(self, stream: anyio.abc.ByteReceiveStream) -> None:
        while True:
            try:
                chunk = await stream.receive(READ_BYTES)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                break
            await self.feed(chunk)
            # The reader buffers far more than one read: without a yield here, a flood's
            # backlog would be read and counted in one loop turn (12 reads, 5 ms, profiled).
            self.yields += 1
            await anyio.lowlevel.checkpoint()
        if self._pending and not self._skipping:
            self._emit(bytes(self._pending))

    async def feed(self, chunk: bytes) -> None:
        """Log the lines `chunk` completes while the budget has room; count the rest."""
        data = bytes(self._pending) + chunk if self._pending else chunk
        self._pending.clear()
        start, emitted = 0, 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            elif not self.budget.has_room():
                end = data.rindex(b"\n")  # over budget: the rest is counted, never split out
                self.budget.drop(data.count(b"\n", start, end + 1))
            elif self.budget.take(min(end - start, MAX_LINE)):
                self._emit(data[start : min(end, start + MAX_LINE)])
                emitted += 1
                if emitted % EMIT_BATCH == 0:
                    self.yields += 1
                    await anyio.lowlevel.checkpoint()  # logging is the costly part
            start = end + 1
        self._keep(data, start)
        self._report_drops()

    def _keep(self, data: bytes, start: int) -> None:
        if self._skipping:
            return
        self._pending += data[start:]
        if len(self._pending) > MAX_LINE:
            self._emit(bytes(self._pending[:MAX_LINE]))
            self.truncated += 1
            self._pending.clear()
            self._skipping = True

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

    def record(self, level: str, message: str, fields: dict[str, object]) -> None:
        """A record that came as a `log` notification: logged and kept for crash reports exactly
        as its stderr line would have been (scrubbed here too: the host never trusts a plugin)."""
        number = _LEVELS.get(level.lower(), logging.INFO)
        text = self.scrubber.scrub_text(message)
        clean = self.scrubber.scrub(fields)
        self.tail.append(f"{logging.getLevelName(number)}: {text}"[:_TAIL_LINE_CHARS])
        if "exc" in clean:
            self.tail.extend(str(clean["exc"]).splitlines()[-8:])
        self.logger.log(number, "%s", text, extra={"plugin_fields": clean})

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
