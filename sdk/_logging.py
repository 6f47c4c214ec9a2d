"""Server layer: plugin logs as JSON lines on stderr, the format the host parses.

Contract: one JSON object per line, `{"ts", "level", "logger", "msg"}` plus `exc` (traceback
text) when there is one and any `extra` fields; every text passes through the secret redactor.
Plain lines (from `print()` or C code) also reach the host, which logs them as-is.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback

from .protocol import SecretScrubber

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLinesHandler(logging.Handler):
    """Writes each record as one redacted JSON line to stderr."""

    def __init__(self, redactor: SecretScrubber) -> None:
        super().__init__()
        self._redactor = redactor

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps(self._payload(record), default=str)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # the logging boundary: a log line must never crash the plugin
            self.handleError(record)

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


def configure_logging(redactor: SecretScrubber, level: str = "INFO") -> None:
    """Route the root logger to JSON lines on stderr (replacing any handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JsonLinesHandler(redactor))
    root.setLevel(level.upper())
