"""Store layer: the SQLite run store's schema, versioned (`PRAGMA user_version`), migrated on open.

Contract: `migrate(db)` brings a file of any older version to `SCHEMA_VERSION`, one migration per
transaction, re-reading the version inside it so two processes opening one file at once migrate
it once. Migrations are append-only; each is a list of statements without inner semicolons.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        organization_id INTEGER NOT NULL,
        definition_id INTEGER,
        workflow_definition TEXT NOT NULL,
        public_token TEXT UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE entries (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        section TEXT NOT NULL CHECK (section IN ('logs', 'annotations')),
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, section, key)
    );
    CREATE TABLE node_results (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        node_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    """
    CREATE TABLE jobs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires REAL,
        enqueued_at REAL NOT NULL,
        finished_at REAL,
        error TEXT
    );
    """,
    # The run row's other fields packages read (`mode`, `usage_info`, `recording_url`, ...).
    "ALTER TABLE runs ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';",
    """
    CREATE TABLE node_results_v3 (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        node_id TEXT NOT NULL,
        attempt_group INTEGER NOT NULL DEFAULT 0,
        plugin TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (run_id, node_id, attempt_group)
    );
    INSERT INTO node_results_v3 (run_id, node_id, plugin, status, attempts, recorded_at)
        SELECT run_id, node_id, plugin, status, attempts, recorded_at FROM node_results;
    DROP TABLE node_results;
    ALTER TABLE node_results_v3 RENAME TO node_results;
    CREATE TABLE node_groups (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        node_id TEXT NOT NULL,
        attempt_group INTEGER NOT NULL,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE jobs_v3 (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'running', 'done', 'partial', 'failed', 'parked')),
        claims INTEGER NOT NULL DEFAULT 0,
        deaths INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires REAL,
        enqueued_at REAL NOT NULL,
        finished_at REAL,
        error TEXT
    );
    INSERT INTO jobs_v3
        (run_id, state, claims, lease_owner, lease_expires, enqueued_at, finished_at, error)
        SELECT run_id, state, attempts, lease_owner, lease_expires, enqueued_at, finished_at, error
        FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v3 RENAME TO jobs;
    CREATE INDEX jobs_by_state ON jobs (state, enqueued_at);
    """,
    # v5: a pending job may wait (a deferral past an open circuit) until `not_before`.
    """
    ALTER TABLE jobs ADD COLUMN not_before REAL;
    """,
    # v6: artifacts in their plugin's namespace (issue #16). Rows from before had no owner: they
    # keep the empty owner, which no plugin has, so no plugin can replace them.
    """
    CREATE TABLE artifacts_v6 (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (run_id, owner, name)
    );
    INSERT INTO artifacts_v6 SELECT run_id, '', name, content_type, body FROM artifacts;
    DROP TABLE artifacts;
    ALTER TABLE artifacts_v6 RENAME TO artifacts;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    for number, script in enumerate(MIGRATIONS, start=1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) < number:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
