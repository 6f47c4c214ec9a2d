"""Store layer: which run store a deployment uses — a file on this machine or a database.

Contract: `open_store(url, data_dir=...)` opens the run store named by `url` (`--store`,
`PLUGBOX_STORE_URL`) and closes it on exit: none (the embedded default) is SQLite at
`DATA_DIR/runs.sqlite3`; `sqlite:///relative/runs.sqlite3` or `sqlite:////absolute/runs.sqlite3`
(SQLAlchemy's spelling) is a SQLite file elsewhere;
`postgresql://user@host:5432/db?schema=plugbox` is PostgreSQL (the optional extra
`plugbox[postgres]`), for workers and API servers on many machines. Anything else, or PostgreSQL
without its driver, is a `StoreError` saying what to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from ._faults import StoreError
from ._protocol import RunStore
from ._sqlite import SQLiteRunStore

STORE_FILE = "runs.sqlite3"
POSTGRES_SCHEMES = ("postgresql", "postgres")


def _sqlite_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or len(parts.path) < 2:
        raise StoreError(f"run store URL {url!r}: expected sqlite:///path/to/runs.sqlite3")
    return Path(parts.path[1:])  # sqlite:///rel/x -> rel/x; sqlite:////abs/x -> /abs/x


@asynccontextmanager
async def open_store(url: str | None, *, data_dir: Path) -> AsyncIterator[RunStore]:
    """The run store `url` names (see the module docstring), open until the block ends."""
    scheme = urlsplit(url).scheme if url else ""
    if not url or scheme == "sqlite":
        path = _sqlite_path(url) if url else data_dir / STORE_FILE
        async with SQLiteRunStore(path) as store:
            yield store
        return
    if scheme not in POSTGRES_SCHEMES:
        raise StoreError(
            f"run store URL {url.split('@')[-1]!r}: expected postgresql://... or sqlite:///..."
        )
    try:
        from ._postgres import PostgresRunStore
    except ImportError as exc:  # the optional extra is not installed
        raise StoreError(
            f"a PostgreSQL run store needs the `postgres` extra: pip install 'plugbox[postgres]'"
            f" ({exc})"
        ) from exc
    async with PostgresRunStore(url) as pg:
        yield pg
