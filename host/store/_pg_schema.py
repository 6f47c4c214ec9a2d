"""Store layer: the PostgreSQL run store's schema, versioned in a table, migrated on open.

Contract: `migrate(conn, schema)` creates the schema when missing and brings it to
`PG_SCHEMA_VERSION` inside one transaction holding an advisory lock per schema, so two workers
opening one database at once migrate it once, and a failed migration leaves the previous version
whole (PostgreSQL's DDL is transactional). The version lives in `plugbox_schema_version` (one
row). Migrations are append-only lists of statements. A database newer than this plugbox is
refused rather than written with an older idea of the tables. The tables mirror the SQLite
backend's schema v6 (`_schema`); times are epoch seconds of the database's clock.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ._faults import StoreError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id BIGSERIAL PRIMARY KEY,
            organization_id BIGINT NOT NULL,
            definition_id BIGINT,
            workflow_definition TEXT NOT NULL,
            public_token TEXT UNIQUE,
            created_at DOUBLE PRECISION NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}'
        )""",
        # `seq` keeps the order keys were first written in (SQLite's rowid).
        """CREATE TABLE entries (
            run_id BIGINT NOT NULL REFERENCES runs(id),
            section TEXT NOT NULL CHECK (section IN ('logs', 'annotations')),
            key TEXT NOT NULL,
            owner TEXT NOT NULL,
            value TEXT NOT NULL,
            seq BIGSERIAL NOT NULL,
            PRIMARY KEY (run_id, section, key)
        )""",
        # Artifacts in their plugin's namespace (the owner is part of the key).
        """CREATE TABLE artifacts (
            run_id BIGINT NOT NULL REFERENCES runs(id),
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            content_type TEXT NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (run_id, owner, name)
        )""",
        """CREATE TABLE node_results (
            run_id BIGINT NOT NULL REFERENCES runs(id),
            node_id TEXT NOT NULL,
            attempt_group INTEGER NOT NULL DEFAULT 0,
            plugin TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            error TEXT,
            recorded_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (run_id, node_id, attempt_group)
        )""",
        """CREATE TABLE node_groups (
            run_id BIGINT NOT NULL REFERENCES runs(id),
            node_id TEXT NOT NULL,
            attempt_group INTEGER NOT NULL,
            PRIMARY KEY (run_id, node_id)
        )""",
        """CREATE TABLE jobs (
            run_id BIGINT PRIMARY KEY REFERENCES runs(id),
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'running', 'done', 'partial', 'failed', 'parked')),
            claims INTEGER NOT NULL DEFAULT 0,
            deaths INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires DOUBLE PRECISION,
            enqueued_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            error TEXT,
            not_before DOUBLE PRECISION
        )""",
        "CREATE INDEX jobs_by_state ON jobs (state, enqueued_at)",
    ),
)
PG_SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT version FROM plugbox_schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str, target: str) -> None:
    async with conn.transaction():
        # One lock per schema: two plugbox deployments in one database do not wait on each other.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"plugbox:{schema}",))
        cursor = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cursor.fetchone() is None:  # a platform may have made it (and own it) already
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS plugbox_schema_version (version INTEGER NOT NULL)"
        )
        current = await schema_version(conn)
        if current > PG_SCHEMA_VERSION:
            raise StoreError(
                f"run store {target}: schema version {current} is newer than this plugbox"
                f" knows ({PG_SCHEMA_VERSION}); upgrade plugbox"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                await conn.execute(statement)
        if current == 0:
            await conn.execute(
                "INSERT INTO plugbox_schema_version VALUES (%s)", (PG_SCHEMA_VERSION,)
            )
        elif current < PG_SCHEMA_VERSION:
            await conn.execute(
                "UPDATE plugbox_schema_version SET version = %s", (PG_SCHEMA_VERSION,)
            )
