"""The run store's SQLite database: schema, connections, and the crash-safety settings.

One file ``store.sqlite`` in WAL mode (readers never block the writer; several processes may
write, each transaction waits on the lock up to ``busy_timeout``). Every write is its own short
transaction, committed before the call returns, so a run killed at any point keeps everything
logged before the kill. All SQL is parameterised.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "StoreError", "connect"]


class StoreError(RuntimeError):
    """The store directory holds something that is not a gdlens store (a foreign or corrupt
    database file, an unwritable location)."""

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,            -- running | completed | interrupted | failed | diverged
    config TEXT NOT NULL,            -- JSON
    summary TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    heartbeat REAL NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    error TEXT,
    sweep TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE IF NOT EXISTS arrays (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,              -- relative to the store directory
    shape TEXT NOT NULL,             -- JSON list
    dtype TEXT NOT NULL,
    PRIMARY KEY (run_id, name, step)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id, step);
"""


def connect(path: Path, timeout: float = 60.0, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the store database with WAL journaling and a busy timeout;
    ``readonly=True`` opens an existing one for reading only (nothing is created or written,
    which works on read-only media too).

    ``synchronous=NORMAL`` in WAL mode never corrupts the database; a power loss may drop the
    last transactions, a killed process never does.
    """
    try:
        return _open_readonly(path, timeout) if readonly else _open(path, timeout)
    except sqlite3.OperationalError as err:  # read-only media, permissions and the like
        raise StoreError(f"{path} cannot be opened{'' if readonly else ' for writing'}: {err}") from err
    except sqlite3.DatabaseError as err:  # includes "file is not a database", "disk I/O error"
        raise StoreError(
            f"{path} cannot be used as a gdlens store database: {err}. Point gdlens at a new directory, "
            f"or move the file away"
        ) from err


def _open_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection. A WAL database in a directory nobody may write to has no
    ``-shm`` file to share: it is then opened as immutable (a snapshot of what is on disk)."""
    uri = Path(path).resolve().as_uri()
    for suffix in ("?mode=ro", "?mode=ro&immutable=1"):
        con = sqlite3.connect(uri + suffix, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as err:
            con.close()
            if "no such table" in str(err):
                raise sqlite3.DatabaseError("it holds no gdlens tables") from err
            if suffix.endswith("immutable=1"):
                raise
            continue
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            con.close()
            raise StoreError(f"{path} has store schema version {row[0]}, newer than this gdlens understands "
                             f"({SCHEMA_VERSION})")
        return con
    raise AssertionError("unreachable")  # pragma: no cover


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    con.execute("PRAGMA foreign_keys=ON")
    with _transaction(con):
        for statement in filter(str.strip, _SCHEMA.split(";")):
            con.execute(statement)
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has store schema version {row[0]}, newer than this gdlens understands ({SCHEMA_VERSION})"
            )
    return con


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up front
    so that concurrent writers queue on the busy timeout instead of failing mid-transaction."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")


transaction = _transaction


def this_process() -> tuple[str, int]:
    """(host name, pid) of the writer, to tell a dead run from a live one."""
    return os.uname().nodename, os.getpid()
