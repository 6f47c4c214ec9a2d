"""Server layer: plugin logging records to the host — `log` notifications, else stderr lines.

Contract: a record becomes `{"ts", "level", "logger", "msg"}` plus `exc` (traceback text) when
there is one and any `extra` fields; every text passes through the secret redactor. Once the
wire is up (`attach_wire`), a record logged on the plugin's event loop — its async handlers and
observers — travels as a `log` notification, written at once and in order with the answers that
follow it (the host budgets them per second). Everything else is one JSON line on stderr, written
synchronously: records from worker threads (sync handlers), from before the handshake or after
the wire closed, from the wire's own modules, and those the pipe cannot take now. Stderr is what
a crash report quotes, so nothing that precedes a crash waits in a buffer. Plain lines (from
`print()` or C code) also reach the host, which logs them as-is.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback

from .protocol import LogParams, Method, RpcSession, SecretScrubber

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_WIRE_LOGGERS = ("plugbox.protocol", "asyncio")


class JsonLinesHandler(logging.Handler):
    """Writes each record as a redacted `log` notification or JSON line on stderr."""

    def __init__(self, redactor: SecretScrubber) -> None:
        super().__init__()
        self._redactor = redactor
        self._wire: RpcSession | None = None
        self._wire_thread: int | None = None  # the event loop's thread: the wire is not threadsafe

    def attach_wire(self, session: RpcSession) -> None:
        """From now on, records logged on this thread (the loop's) go out as `log` notifications."""
        self._wire, self._wire_thread = session, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = self._payload(record)
            if self._to_wire(record, payload):
                return
            line = json.dumps(payload, default=str)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # the logging boundary: a log line must never crash the plugin
            self.handleError(record)

    def _to_wire(self, record: logging.LogRecord, payload: dict[str, object]) -> bool:
        wire = self._wire
        if wire is None or threading.get_ident() != self._wire_thread:
            return False
        if record.name.startswith(_WIRE_LOGGERS):  # the wire reporting on itself: never re-enter
            return False
        fields = {k: v for k, v in payload.items() if k not in ("level", "msg", "logger")}
        params = LogParams(
            level=str(payload["level"]),
            message=str(payload["msg"]),
            logger=str(payload["logger"]),
            fields=json.loads(json.dumps(fields, default=str)),  # strict JSON, as stderr has it
        )
        return wire.notify_nowait(Method.LOG, params)

    def _payload(self, record: logging.LogRecord) -> dict[str, object]:
        redact = self._redactor.scrub_text
        payload: dict[str, object] = {
            "ts": round(time.time(), 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info and record.exc_info[1] is not None:
            payload["exc"] = redact("".join(traceback.format_exception(record.exc_info[1])))
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = redact(str(value)) if isinstance(value, str) else value
        return payload


def configure_logging(redactor: SecretScrubber, level: str = "INFO") -> JsonLinesHandler:
    """Route the root logger to JSON lines on stderr (replacing any handler); `attach_wire` on
    the handler returned moves the loop's records to the wire."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = JsonLinesHandler(redactor)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
