"""Host layer: log output for people and for shipping, and each plugin's recent log lines.

Contract: `configure_logging(level, fmt)` installs one stderr handler on the root logger; `text`
prints `LEVEL logger: message`, and for a plugin's line also the plugin's own logger name and
its traceback (the SDK sends both as fields the supervisor attaches to the record); `json` prints
one object per line with the same fields. `PluginLogs` (one per `PluginHost`) keeps the last
`MEMORY_LINES` records of each plugin in memory and appends every record to
`<data>/logs/<plugin>.log` (JSON lines, rotated at `ROTATE_BYTES`, `ROTATE_KEEP` old files), which
`plugbox logs` reads. Plugin records are captured at INFO even when the console shows less.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

PLUGIN_LOGGER = "plugbox.plugins"  # the supervisor logs plugin `<name>` on `plugbox.plugins.<name>`
MEMORY_LINES = 200
ROTATE_BYTES = 1024 * 1024
ROTATE_KEEP = 3
# Chatty libraries whose INFO lines say nothing an operator needs (one line per HTTP request).
_QUIET_AT_INFO = ("httpx", "httpcore", "asyncio", "multipart")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """One record as the JSON object both the console (json) and the files use."""
    fields: dict[str, Any] = {
        "ts": round(record.created, 6),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    plugin = _plugin_of(record)
    if plugin is not None:
        fields["plugin"] = plugin
    extra = getattr(record, "plugin_fields", None)
    if isinstance(extra, dict):
        if extra.get("logger"):
            fields["plugin_logger"] = str(extra["logger"])
        if extra.get("exc"):
            fields["traceback"] = str(extra["exc"])
        other = {k: v for k, v in extra.items() if k not in {"logger", "exc", "ts"}}
        if other:
            fields["fields"] = other
    if record.exc_info and record.exc_info[1] is not None:
        fields["traceback"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _plugin_of(record: logging.LogRecord) -> str | None:
    prefix = PLUGIN_LOGGER + "."
    return record.name[len(prefix) :] if record.name.startswith(prefix) else None


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, with a plugin's logger name and its traceback when it sent them."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        name = fields["logger"]
        if "plugin_logger" in fields:
            name = f"{name} ({fields['plugin_logger']})"
        line = f"{fields['level']} {name}: {fields['msg']}"
        if "traceback" in fields:
            line += "\n" + str(fields["traceback"]).rstrip("\n")
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Route the root logger to stderr at `level`, as text or JSON lines (replacing handlers)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.setLevel(numeric)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _QUIET_AT_INFO:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    # Plugin lines are kept (memory, files) at INFO even when the console shows only warnings.
    logging.getLogger(PLUGIN_LOGGER).setLevel(min(numeric, logging.INFO))


class PluginLogs(logging.Handler):
    """The recent log records of every plugin, in memory and in rotated files."""

    def __init__(self, directory: Path | None, *, memory_lines: int = MEMORY_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.directory = directory
        self._memory_lines = memory_lines
        self._recent: dict[str, deque[dict[str, Any]]] = {}
        self._files: dict[str, logging.handlers.RotatingFileHandler] = {}

    def emit(self, record: logging.LogRecord) -> None:
        plugin = _plugin_of(record)
        if plugin is None or "." in plugin:
            return
        try:
            fields = record_fields(record)
            recent = self._recent.setdefault(plugin, deque(maxlen=self._memory_lines))
            recent.append(fields)
            writer = self._writer(plugin)
            if writer is not None:
                writer.emit(logging.makeLogRecord({"msg": json.dumps(fields, default=str)}))
        except Exception:  # the logging boundary: a full disk must not fail a plugin call
            self.handleError(record)

    def _writer(self, plugin: str) -> logging.handlers.RotatingFileHandler | None:
        if self.directory is None:
            return None
        writer = self._files.get(plugin)
        if writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            writer = logging.handlers.RotatingFileHandler(
                log_path(self.directory, plugin),
                maxBytes=ROTATE_BYTES,
                backupCount=ROTATE_KEEP,
                encoding="utf-8",
            )
            writer.setFormatter(logging.Formatter("%(message)s"))
            self._files[plugin] = writer
        return writer

    def recent(self, plugin: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The last records of `plugin`, oldest first."""
        lines = list(self._recent.get(plugin, ()))
        return lines[-limit:] if limit else lines

    def errors(self, plugin: str, limit: int = 5) -> list[dict[str, Any]]:
        """The last ERROR-or-worse records of `plugin` (with their tracebacks), newest last."""
        bad = [f for f in self._recent.get(plugin, ()) if f["level"] in {"ERROR", "CRITICAL"}]
        return bad[-limit:]

    def attach(self) -> None:
        logging.getLogger(PLUGIN_LOGGER).addHandler(self)
        if logging.getLogger(PLUGIN_LOGGER).getEffectiveLevel() > logging.INFO:
            logging.getLogger(PLUGIN_LOGGER).setLevel(logging.INFO)

    def detach(self) -> None:
        """Stop capturing (the host is closing) and close the files."""
        logging.getLogger(PLUGIN_LOGGER).removeHandler(self)
        self.close()

    def close(self) -> None:
        # Also called by `logging.config.dictConfig` (uvicorn's) on every handler it finds: the
        # files are closed, the handler stays attached and reopens a file on its next record.
        for writer in self._files.values():
            writer.close()
        self._files.clear()


def log_path(directory: Path, plugin: str) -> Path:
    return directory / f"{plugin}.log"


def read_rotated(path: Path) -> list[str]:
    """The lines of a log file's rotated predecessors (`.3` ... `.1`), oldest first."""
    collected: list[str] = []
    for index in range(ROTATE_KEEP, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            collected.extend(older.read_text("utf-8", errors="replace").splitlines())
    return collected


def render(line: str) -> str:
    """A stored JSON line as the text console shows it."""
    try:
        fields = json.loads(line)
    except ValueError:
        return line
    if not isinstance(fields, dict):
        return line
    stamp = time.strftime("%H:%M:%S", time.localtime(float(fields.get("ts", 0))))
    name = fields.get("plugin_logger") or fields.get("logger", "")
    text = f"{stamp} {fields.get('level', '')} {name}: {fields.get('msg', '')}"
    if fields.get("traceback"):
        text += "\n" + str(fields["traceback"]).rstrip("\n")
    return text
