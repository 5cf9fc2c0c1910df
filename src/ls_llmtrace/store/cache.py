"""A persistent key -> JSON cache in its own SQLite file, shared by the threads of a process.

Used for answers that cost money to recompute (a judge's verdicts): re-running on the same
input makes no new call. Entries live in a namespace (e.g. ``verdicts``) under a composite
key; only what the caller chose to keep is stored, so a failure is retried next time.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ls_llmtrace.errors import StoreError


class KeyedCache:
    """``get``/``put`` of text values by ``(namespace, key)`` in one SQLite file."""

    def __init__(self, path: Path, what: str = "cache", hint: str = "") -> None:
        self.path = path
        self._what = what
        self._hint = hint
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=30,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (namespace TEXT NOT NULL, "
                "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (namespace, key))")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the {what} {path}: {exc}"
                             + (f"; {hint}" if hint else "")) from exc

    def get(self, namespace: str, key: str) -> str | None:
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT value FROM entries WHERE namespace=? AND key=?",
                    (namespace, key)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the {self._what} {self.path}: {exc}") from exc
        return str(row[0]) if row else None

    def put(self, namespace: str, key: str, value: str) -> None:
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO entries VALUES (?, ?, ?) ON CONFLICT (namespace, key) "
                    "DO UPDATE SET value=excluded.value", (namespace, key, value))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the {self._what} {self.path}: {exc}") from exc

    def count(self, namespace: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM entries WHERE namespace=?",
                                     (namespace,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
