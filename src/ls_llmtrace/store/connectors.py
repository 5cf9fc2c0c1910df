"""The store's connector state: pull cursors and what each push sent.

A pull (``ls-llmtrace pull phoenix``) remembers how far it has read per (system,
scope), so the next pull starts there. A push remembers, per item it sent, the remote id
the other system gave it (for an update) and a hash of what was sent, so a second push of
unchanged records sends nothing. Mixed into :class:`ls_llmtrace.store.Store`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from ls_llmtrace.store.engine import Connection


@dataclass(frozen=True)
class PushedItem:
    """What was last sent for one item: the other system's id for it and the hash."""

    remote_id: str | None
    content_hash: str


class ConnectorStore:
    """Typed access to ``connector_cursors`` and ``connector_pushes``."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def connector_cursor(self, system: str, scope: str) -> str | None:
        row = self.conn.execute(
            "SELECT cursor FROM connector_cursors WHERE system=? AND scope=?",
            (system, scope)).fetchone()
        return None if row is None else str(row["cursor"])

    def set_connector_cursor(self, system: str, scope: str, cursor: str) -> None:
        now = datetime.now(UTC).isoformat()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO connector_cursors (system, scope, cursor, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (system, scope) DO UPDATE SET "
                "cursor=excluded.cursor, updated_at=excluded.updated_at",
                (system, scope, cursor, now))

    def pushed_items(self, system: str, scope: str) -> dict[str, PushedItem]:
        rows = self.conn.execute(
            "SELECT item_key, remote_id, content_hash FROM connector_pushes "
            "WHERE system=? AND scope=?", (system, scope))
        return {str(r["item_key"]): PushedItem(r["remote_id"], str(r["content_hash"]))
                for r in rows}

    def remember_push(self, system: str, scope: str, item_key: str, remote_id: str | None,
                      content_hash: str) -> None:
        now = datetime.now(UTC).isoformat()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO connector_pushes (system, scope, item_key, remote_id, "
                "content_hash, pushed_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (system, scope, item_key) DO UPDATE SET "
                "remote_id=excluded.remote_id, content_hash=excluded.content_hash, "
                "pushed_at=excluded.pushed_at",
                (system, scope, item_key, remote_id, content_hash, now))

    def forget_push(self, system: str, scope: str, item_key: str) -> None:
        """Drop what was remembered for an item the other system no longer holds."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM connector_pushes WHERE system=? AND scope=? AND "
                         "item_key=?", (system, scope, item_key))
