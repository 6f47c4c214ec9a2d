"""Suite-wide fixtures: the anyio plugin runs on the asyncio backend only (pipecat is asyncio)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
