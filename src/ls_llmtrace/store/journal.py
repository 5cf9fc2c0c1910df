"""The schema-migration journal: the store tables of a migration run.

A run (``schema_migration_runs``) is planned in one transaction, every annotation's old
and new result journaled as an item (``schema_migration_items``) before anything is
written to Label Studio; each item then gets its outcome and done-marker in the same
transaction as its records; values no rule could place go to the review queue
(``schema_migration_reviews``). A run whose status is ``done`` is the log entry of the
applied migration. The runner is ``records/migrate.py``; :class:`JournalStore` is a
part of :class:`ls_llmtrace.store.Store`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ls_llmtrace.store.engine import Connection


def _now() -> str:
    return datetime.now(UTC).isoformat()


def canonical_json(value: Any) -> str:
    """The journal's JSON: keys sorted, so equal results compare equal as text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class MigrationRun:
    """One run of a migration over one project (``status``: applying | done)."""

    run_id: str
    project_id: int
    queue: str
    schema_id: str
    from_version: int
    to_version: int
    migration_name: str
    migration_sha: str
    status: str = "applying"
    planned_at: str = ""
    finished_at: str | None = None


@dataclass(frozen=True)
class PlannedItem:
    """One annotation of a run: as planned (its task and annotation then), its new
    result, the values for the review queue, and whether the result changes."""

    annotation_id: int
    task_id: int
    old_annotation: dict[str, Any]
    new_result: list[Any]
    reviews: list[dict[str, Any]]
    changed: bool


@dataclass(frozen=True)
class MigrationReview:
    """A value for the review queue."""

    field: str
    value: str
    reason: str
    raw: Any


class JournalStore:
    """The journal's statements (mixed into the Store, which owns the connection)."""

    conn: Connection

    def migration_run(self, run_id: str) -> MigrationRun | None:
        row = self.conn.execute(
            "SELECT * FROM schema_migration_runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        fields = dict(row)
        fields.pop("summary", None)
        return MigrationRun(**fields)

    def migration_planned_ids(self, run_id: str) -> set[int]:
        rows = self.conn.execute(
            "SELECT annotation_id FROM schema_migration_items WHERE run_id=?", (run_id,))
        return {int(r["annotation_id"]) for r in rows}

    def migration_pending(self, run_id: str) -> list[PlannedItem]:
        """The items of a run not done yet, by annotation id."""
        rows = self.conn.execute(
            "SELECT * FROM schema_migration_items WHERE run_id=? AND done_at IS NULL "
            "ORDER BY annotation_id", (run_id,))
        return [PlannedItem(int(r["annotation_id"]), int(r["task_id"]),
                            json.loads(r["old_annotation"]), json.loads(r["new_result"]),
                            json.loads(r["reviews"]), bool(r["changed"])) for r in rows]

    def migration_outcomes(self, run_id: str) -> Counter[str]:
        rows = self.conn.execute(
            "SELECT outcome, COUNT(*) AS n FROM schema_migration_items WHERE run_id=? "
            "GROUP BY outcome", (run_id,))
        return Counter({str(r["outcome"]): int(r["n"]) for r in rows})

    @staticmethod
    def start_migration_run(conn: Connection, run: MigrationRun) -> None:
        conn.execute(
            "INSERT INTO schema_migration_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, run.project_id, run.queue, run.schema_id, run.from_version,
             run.to_version, run.migration_name, run.migration_sha, "applying",
             run.planned_at or _now(), None, "{}"))

    @staticmethod
    def plan_migration_items(conn: Connection, run_id: str, items: list[PlannedItem]) -> None:
        """Journal items (an item already planned is kept as it was)."""
        conn.executemany(
            "INSERT INTO schema_migration_items (run_id, annotation_id, task_id, "
            "old_annotation, new_result, reviews, changed) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, annotation_id) DO NOTHING",
            [(run_id, i.annotation_id, i.task_id, canonical_json(i.old_annotation),
              canonical_json(i.new_result), canonical_json(i.reviews), int(i.changed))
             for i in items])

    @staticmethod
    def add_migration_review(conn: Connection, run_id: str, annotation_id: int, task_id: int,
                             review: MigrationReview) -> None:
        conn.execute(
            "INSERT INTO schema_migration_reviews VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (run_id, annotation_id, task_id, review.field, review.value, review.reason,
             canonical_json(review.raw)))

    @staticmethod
    def finish_migration_item(conn: Connection, run_id: str, annotation_id: int,
                              outcome: str) -> None:
        """The done-marker of one item, with its outcome (rewritten | already | unchanged
        | conflict | deleted)."""
        conn.execute("UPDATE schema_migration_items SET outcome=?, done_at=? WHERE run_id=? "
                     "AND annotation_id=?", (outcome, _now(), run_id, annotation_id))

    @staticmethod
    def finish_migration_run(conn: Connection, run_id: str, summary: dict[str, Any]) -> None:
        conn.execute("UPDATE schema_migration_runs SET status='done', finished_at=?, "
                     "summary=? WHERE run_id=?",
                     (_now(), json.dumps(summary, sort_keys=True), run_id))

    @staticmethod
    def forget_rejects_since(conn: Connection, project_id: int, since: str) -> None:
        """Drop the results of a project kept aside since ``since`` (ISO time): judged by
        a schema version the project has left."""
        conn.execute("DELETE FROM rejected_results WHERE ls_project_id=? AND seen_at>=?",
                     (project_id, since))

    def applied_migrations(self) -> list[dict[str, Any]]:
        """Applied migrations, oldest first (the log)."""
        rows = self.conn.execute(
            "SELECT run_id, project_id, queue, schema_id, from_version, to_version, "
            "migration_name, migration_sha, planned_at, finished_at, summary FROM "
            "schema_migration_runs WHERE status='done' ORDER BY finished_at, run_id")
        return [dict(r) for r in rows]

    def migration_reviews(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The review queue (of one run, or of all)."""
        sql = "SELECT * FROM schema_migration_reviews"
        args: tuple[Any, ...] = ()
        if run_id:
            sql += " WHERE run_id=?"
            args = (run_id,)
        rows = self.conn.execute(sql + " ORDER BY run_id, annotation_id, field, value", args)
        return [dict(r) for r in rows]
