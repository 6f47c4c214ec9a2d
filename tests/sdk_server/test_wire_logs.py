"""Plugin logging records: on the loop's thread a `log` notification, elsewhere a stderr line."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from sdk._logging import JsonLinesHandler
from sdk.protocol import LogParams, Method, SecretScrubber


class Wire:
    """The seam: what the handler needs of a session (`notify_nowait`), recorded."""

    def __init__(self, room: bool = True) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.room = room

    def notify_nowait(self, method: str, params: Any) -> bool:
        if self.room:
            self.sent.append((method, params))
        return self.room


def handler_on(wire: Wire) -> tuple[JsonLinesHandler, logging.Logger]:
    handler = JsonLinesHandler(SecretScrubber(["hunter2-secret"]))
    handler.attach_wire(wire)  # type: ignore[arg-type]
    logger = logging.getLogger("vendor.delivery")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers = [handler]
    return handler, logger


def test_a_record_on_the_wire_thread_is_a_log_notification_with_its_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    wire = Wire()
    _, logger = handler_on(wire)
    try:
        raise ValueError("bad number")
    except ValueError:
        logger.exception("sending %s failed", "hunter2-secret", extra={"node": "n1"})
    ((method, params),) = wire.sent
    assert method == Method.LOG
    assert isinstance(params, LogParams)
    assert (params.level, params.logger) == ("error", "vendor.delivery")
    assert "hunter2-secret" not in params.message  # redacted before it leaves the plugin
    assert params.fields["node"] == "n1"
    assert "ValueError: bad number" in params.fields["exc"]
    assert capsys.readouterr().err == ""


def test_other_threads_and_a_full_pipe_fall_back_to_stderr_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    wire = Wire()
    _, logger = handler_on(wire)
    worker = threading.Thread(target=logger.warning, args=("from a sync handler",))
    worker.start()
    worker.join()
    wire.room = False
    logger.info("the pipe is backed up")
    assert wire.sent == []
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["from a sync handler", "the pipe is backed up"]
    assert lines[0]["level"] == "warning"
