"""SQLite persistence for the store: one row per object plus the resourceVersion counter.

Write-through: every mutation is written as it happens; the mutations of one event-loop tick
share one transaction, committed at the end of that tick (group commit). WAL with
synchronous=NORMAL means no fsync per commit: a power cut may lose the last transactions.
The event history is not persisted: after a restart, watches from before it get 410 as from a
fresh watch cache.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    rv        INTEGER NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

DB_FILE = "apiserver.sqlite"


class SqlitePersistence:
    """Implements store.Persistence over one SQLite file in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_FILE
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per mutation.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._in_txn = False
        self._commit_pending = False
        self._rv = 0

    def rows(self) -> Iterator[tuple[str, str, str, int, bytes]]:
        yield from self._db.execute("SELECT resource, namespace, name, rv, data FROM objects")

    def resource_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        return int(row[0]) if row else 0

    def put(self, resource: str, namespace: str, name: str, rv: int, raw: bytes) -> None:
        self._begin()
        self._db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
            (resource, namespace, name, rv, raw),
        )
        self._rv = rv
        if not self._commit_pending:
            self.flush()

    def delete(self, resource: str, namespace: str, name: str, rv: int) -> None:
        self._begin()
        self._db.execute(
            "DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            (resource, namespace, name),
        )
        self._rv = rv
        if not self._commit_pending:
            self.flush()

    def _begin(self) -> None:
        """Group commit: mutations of one event-loop tick share one transaction, committed by
        a callback at the end of the tick (immediately when no loop runs, as in unit tests)."""
        if self._in_txn:
            return
        self._db.execute("BEGIN")
        self._in_txn = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._commit_pending = False
        else:
            loop.call_soon(self.flush)
            self._commit_pending = True

    def flush(self) -> None:
        """Commit the open transaction, if any (also called at shutdown)."""
        if not self._in_txn:
            return
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (self._rv,))
        self._db.execute("COMMIT")
        self._in_txn = False
        self._commit_pending = False

    def close(self) -> None:
        self.flush()
        self._db.close()
