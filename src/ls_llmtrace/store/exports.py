"""The store's record of the snapshot exports a first sync made (``sync_exports``).

A first sync notes each export it creates in Label Studio before waiting for it, and
marks it gone once it deleted it. What the rows tell the next sync:

- an export not marked gone may still be in Label Studio (the run was killed before its
  ``finally`` could delete it): the next sync deletes it;
- any row at all for a project without a cursor means a first sync from an export was
  interrupted: the next first sync pages through the task list instead, committing each
  page with its cursor, so repeated interruptions still make progress.

Rows go once the project's sync finishes. :class:`SyncExportStore` is mixed into
:class:`ls_llmtrace.store.Store`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

from ls_llmtrace.store.engine import Connection


class SyncExportStore:
    """Typed access to ``sync_exports`` (needs ``conn`` and ``transaction``)."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def note_sync_export(self, project_id: int, export_id: int, owner: str) -> None:
        """An export was created in Label Studio (committed at once)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sync_exports (project_id, export_id, owner, created_at, gone) "
                "VALUES (?, ?, ?, ?, 0) ON CONFLICT (project_id, export_id) DO NOTHING",
                (project_id, export_id, owner, datetime.now(UTC).isoformat()))

    def mark_sync_export_gone(self, project_id: int, export_id: int) -> None:
        """The export was deleted in Label Studio (or was not there any more)."""
        with self.transaction() as conn:
            conn.execute("UPDATE sync_exports SET gone=1 WHERE project_id=? AND export_id=?",
                         (project_id, export_id))

    def sync_exports_left(self, project_id: int) -> list[tuple[int, str, datetime]]:
        """(export id, owner, noted at) of the project's exports that may still be in
        Label Studio."""
        rows = self.conn.execute(
            "SELECT export_id, owner, created_at FROM sync_exports WHERE project_id=? "
            "AND gone=0 ORDER BY export_id", (project_id,)).fetchall()
        return [(int(r["export_id"]), str(r["owner"]), datetime.fromisoformat(r["created_at"]))
                for r in rows]

    def sync_export_attempts(self, project_id: int) -> int:
        """How many exports earlier, unfinished first syncs of the project made."""
        row = self.conn.execute("SELECT COUNT(*) AS n FROM sync_exports WHERE project_id=?",
                                (project_id,)).fetchone()
        return int(row["n"])

    def forget_sync_exports(self, project_id: int) -> None:
        """The project's sync finished: forget the exports already gone."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM sync_exports WHERE project_id=? AND gone=1",
                         (project_id,))
