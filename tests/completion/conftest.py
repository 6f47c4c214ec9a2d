"""Fixtures of the completion tests: one real PostgreSQL server for the session, and the run
store's URL on each backend (`store_url`), so one contract suite runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl into a temporary directory on a free port (skipped, with the reason,
    where PostgreSQL cannot run: CI installs it with tools/system-deps.sh)."""
    found = PostgresServer.find()
    if isinstance(found, str):
        pytest.skip(found)
    found.start()
    try:
        yield found
    finally:
        found.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A schema of its own per test: isolation, and the `schema` setting exercised each time."""
    return f"{postgres_server.url}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
