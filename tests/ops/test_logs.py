"""Plugin logs: its own logger name, level and traceback reach the console, memory and disk."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from host._logs import TextFormatter, configure_logging
from sdk.protocol import Calls

from ._helpers import REPO, RecordWaiter, chatty_params, ops_host, plugbox, readline_within

pytestmark = pytest.mark.anyio


async def test_a_plugins_log_exception_keeps_its_logger_and_traceback(tmp_path: Path) -> None:
    logger = "plugbox.plugins.chatty"
    waiter = RecordWaiter(lambda r: "exc" in getattr(r, "plugin_fields", {})).attach(logger)
    printed = RecordWaiter(lambda r: r.getMessage() == "plain print from chatty").attach(logger)
    async with ops_host(tmp_path / "data") as plugins:
        handle = plugins.get("chatty")
        stderr = (await handle.start()).stderr
        lines = stderr.lines
        await handle.call(Calls.COMPLETION_RUN, chatty_params("log"))
        await waiter.wait(logger)
        await printed.wait(logger)  # stderr and the wire are two pipes: either may come first
        records = plugins.logs.recent("chatty")
        # The handler runs on the plugin's loop: its two records came as `log` notifications,
        # only the print() on stderr.
        assert stderr.lines - lines == 1
    info = next(r for r in records if r["msg"] == "delivering node n0")
    assert info["level"] == "INFO"
    assert info["plugin_logger"] == "chatty.delivery"
    assert any(r["msg"] == "plain print from chatty" for r in records)
    failure = next(r for r in records if "traceback" in r)
    assert failure["level"] == "ERROR"
    assert failure["plugin_logger"] == "chatty.delivery"
    assert "in _parse_phone" in failure["traceback"]
    assert "ValueError" in failure["traceback"]
    assert plugins.logs.errors("chatty") == [failure]
    stored = (tmp_path / "data" / "logs" / "chatty.log").read_text().splitlines()
    assert failure in [json.loads(line) for line in stored]


def test_the_text_console_prints_the_plugin_logger_and_the_traceback() -> None:
    record = logging.makeLogRecord(
        {
            "name": "plugbox.plugins.chatty",
            "levelno": logging.ERROR,
            "levelname": "ERROR",
            "msg": "could not parse",
            "plugin_fields": {"logger": "chatty.delivery", "exc": "Traceback ...\nValueError: x"},
        }
    )
    text = TextFormatter().format(record)
    assert text.startswith("ERROR plugbox.plugins.chatty (chatty.delivery): could not parse")
    assert text.endswith("ValueError: x")


def test_configure_logging_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


def _interruptible() -> None:
    """A shell's background job starts with SIGINT ignored, and Python keeps an ignored SIGINT:
    the follower gets Ctrl-C's default back, whatever started this suite."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_logs_command_shows_the_traceback_and_follows_new_lines(tmp_path: Path) -> None:
    logs = tmp_path / ".plugbox" / "logs"
    logs.mkdir(parents=True)
    first = {"ts": 1.0, "level": "ERROR", "logger": "plugbox.plugins.chatty", "msg": "[/x] bad"}
    first |= {"plugin_logger": "chatty.delivery", "traceback": "Traceback\nValueError: [phone]"}
    (logs / "chatty.log").write_text(json.dumps(first) + "\n")
    shown = plugbox("logs", "chatty", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "ERROR chatty.delivery: [/x] bad" in shown.stdout
    assert "ValueError: [phone]" in shown.stdout
    missing = plugbox("logs", "nobody", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no logs for 'nobody'" in missing.stderr

    env = {"PYTHONPATH": str(REPO), "PLUGBOX_DATA_DIR": str(tmp_path / ".plugbox")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "logs", "chatty", "-f", "--json", "-n", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        env=env,
        preexec_fn=_interruptible,
    )
    try:
        assert json.loads(readline_within(follower, 30))["msg"] == "[/x] bad"
        later = {**first, "msg": "a later line"}
        with (logs / "chatty.log").open("a") as stream:
            stream.write(json.dumps(later) + "\n")
        assert json.loads(readline_within(follower, 10))["msg"] == "a later line"
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            code = follower.wait(timeout=10)
        finally:
            if follower.returncode is None:  # never leave it running (nor its pipe open)
                follower.kill()
                follower.wait()
            assert follower.stdout is not None
            follower.stdout.close()
    assert code == 0
