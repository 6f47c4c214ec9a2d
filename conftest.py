"""Suite-wide fixtures: the anyio plugin runs on the asyncio backend only (pipecat is asyncio)."""

from __future__ import annotations

import os

import pytest

# pipecat logs a banner and DEBUG lines through loguru unless told otherwise (read at import).
os.environ.setdefault("LOGURU_LEVEL", "WARNING")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
