"""The record store: SQLite by default, migrating itself when opened.

Every write that must be atomic (records with the sync cursor that covers them) happens
in one transaction through :meth:`Store.transaction`. Upserts are by natural keys, so
running an import or a sync twice changes nothing the second time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import settings
from .errors import StoreError
from .models import AnnotationRecord, Trace

# Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", """
        CREATE TABLE traces (
            trace_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            body TEXT NOT NULL,
            imported_at TEXT NOT NULL
        );
        CREATE TABLE projects (
            project_id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            title TEXT NOT NULL
        );
        CREATE TABLE ls_tasks (
            project_id INTEGER NOT NULL,
            trace_id TEXT NOT NULL,
            task_id INTEGER NOT NULL,
            PRIMARY KEY (project_id, trace_id)
        );
        CREATE INDEX ls_tasks_task ON ls_tasks (project_id, task_id);
        CREATE TABLE sync_cursors (
            project_id INTEGER PRIMARY KEY,
            updated_at TEXT NOT NULL,
            synced_at TEXT NOT NULL
        );
        CREATE TABLE records (
            record_key TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            schema_id TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            source TEXT NOT NULL,
            label TEXT,
            score REAL,
            author TEXT,
            ls_project_id INTEGER,
            ls_task_id INTEGER,
            ls_annotation_id INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX records_trace ON records (trace_id);
        CREATE INDEX records_annotation ON records (ls_project_id, ls_annotation_id);
        CREATE TABLE rejected_results (
            reject_key TEXT PRIMARY KEY,
            ls_project_id INTEGER,
            ls_task_id INTEGER,
            ls_annotation_id INTEGER,
            field TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            seen_at TEXT NOT NULL
        );
    """),
    # issue 4: review queues. queue_items is the claim row per (project, trace or pair),
    # inserted before the Label Studio import so two imports at once never both import;
    # store_locks serializes project creation; pair_candidates feeds pairwise queues.
    ("0400_issue4_queues", """
        CREATE TABLE queue_items (
            project_id INTEGER NOT NULL,
            item_key TEXT NOT NULL,
            queue TEXT NOT NULL,
            reason TEXT NOT NULL,
            claimed_by TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            task_id INTEGER,
            PRIMARY KEY (project_id, item_key)
        );
        CREATE INDEX queue_items_queue ON queue_items (queue, task_id);
        CREATE TABLE store_locks (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        );
        CREATE TABLE pair_candidates (
            queue TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            variant TEXT NOT NULL,
            paired INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (queue, trace_id)
        );
        CREATE INDEX pair_candidates_hash ON pair_candidates (queue, input_hash, paired);
    """),
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise StoreError(
            f"unsupported store URL {url!r}: use sqlite:///path/to/store.sqlite "
            "(PostgreSQL is not supported yet)"
        )
    return Path(url.removeprefix("sqlite:///"))


class Store:
    """Open (and migrate) the store at ``url`` (default: settings.db_url())."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.db_url()
        path = sqlite_path(self.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply pending migrations, each in its own transaction; return their names."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {r["name"] for r in self.conn.execute("SELECT name FROM migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction() as conn:
                for statement in filter(str.strip, sql.split(";")):
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    def tables(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        return [r["name"] for r in rows]

    # traces -----------------------------------------------------------------------------

    def upsert_traces(self, traces: Iterable[Trace]) -> None:
        now = _now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO traces VALUES (?, ?, ?, ?) ON CONFLICT (trace_id) DO UPDATE "
                "SET source=excluded.source, body=excluded.body",
                [(t.trace_id, t.source, t.model_dump_json(exclude_defaults=True), now)
                 for t in traces],
            )

    def trace(self, trace_id: str) -> Trace | None:
        row = self.conn.execute("SELECT body FROM traces WHERE trace_id=?", (trace_id,)).fetchone()
        return Trace.model_validate_json(row["body"]) if row else None

    # projects and the task ledger --------------------------------------------------------

    def remember_project(self, project_id: int, queue: str, schema_id: str, version: int,
                         title: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE "
                "SET queue=excluded.queue, schema_id=excluded.schema_id, "
                "schema_version=excluded.schema_version, title=excluded.title",
                (project_id, queue, schema_id, version, title),
            )

    def projects(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM projects ORDER BY project_id")]

    def known_trace_ids(self, project_id: int) -> set[str]:
        rows = self.conn.execute("SELECT trace_id FROM ls_tasks WHERE project_id=?", (project_id,))
        return {r["trace_id"] for r in rows}

    def max_task_id(self, project_id: int) -> int:
        row = self.conn.execute(
            "SELECT COALESCE(MAX(task_id), 0) AS m FROM ls_tasks WHERE project_id=?", (project_id,)
        ).fetchone()
        return int(row["m"])

    def record_tasks(self, project_id: int, pairs: Iterable[tuple[int, str]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO ls_tasks (project_id, trace_id, task_id) VALUES (?, ?, ?) "
                "ON CONFLICT (project_id, trace_id) DO NOTHING",
                [(project_id, trace_id, task_id) for task_id, trace_id in pairs],
            )

    # sync cursor and records -------------------------------------------------------------

    def cursor(self, project_id: int) -> datetime | None:
        row = self.conn.execute(
            "SELECT updated_at FROM sync_cursors WHERE project_id=?", (project_id,)
        ).fetchone()
        return datetime.fromisoformat(row["updated_at"]) if row else None

    @staticmethod
    def set_cursor(conn: sqlite3.Connection, project_id: int, updated_at: datetime) -> None:
        conn.execute(
            "INSERT INTO sync_cursors VALUES (?, ?, ?) ON CONFLICT (project_id) DO UPDATE "
            "SET updated_at=excluded.updated_at, synced_at=excluded.synced_at",
            (project_id, updated_at.isoformat(), _now()),
        )

    @staticmethod
    def upsert_record(conn: sqlite3.Connection, record: AnnotationRecord) -> bool:
        """Insert or update one record; True if anything changed."""
        body = record.model_dump_json()
        old = conn.execute(
            "SELECT body FROM records WHERE record_key=?", (record.record_key,)
        ).fetchone()
        if old is not None and old["body"] == body:
            return False
        conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (record_key) DO UPDATE SET trace_id=excluded.trace_id, "
            "schema_id=excluded.schema_id, schema_version=excluded.schema_version, "
            "source=excluded.source, label=excluded.label, score=excluded.score, "
            "author=excluded.author, ls_project_id=excluded.ls_project_id, "
            "ls_task_id=excluded.ls_task_id, ls_annotation_id=excluded.ls_annotation_id, "
            "deleted=excluded.deleted, updated_at=excluded.updated_at, body=excluded.body",
            (record.record_key, record.trace_id, record.schema_id, record.schema_version,
             record.source.value, record.label, record.score, record.author,
             record.ls_project_id, record.ls_task_id, record.ls_annotation_id,
             int(record.deleted), record.updated_at.isoformat() if record.updated_at else None,
             body),
        )
        return True

    @staticmethod
    def live_annotation_ids(conn: sqlite3.Connection, project_id: int, task_id: int) -> set[int]:
        rows = conn.execute(
            "SELECT DISTINCT ls_annotation_id FROM records WHERE ls_project_id=? AND "
            "ls_task_id=? AND deleted=0 AND ls_annotation_id IS NOT NULL",
            (project_id, task_id),
        )
        return {int(r["ls_annotation_id"]) for r in rows}

    @staticmethod
    def mark_annotation_deleted(conn: sqlite3.Connection, project_id: int,
                                annotation_id: int) -> int:
        rows = conn.execute(
            "SELECT record_key, body FROM records WHERE ls_project_id=? AND ls_annotation_id=? "
            "AND deleted=0", (project_id, annotation_id),
        ).fetchall()
        for row in rows:
            record = AnnotationRecord.model_validate_json(row["body"])
            record = record.model_copy(update={"deleted": True})
            conn.execute("UPDATE records SET deleted=1, body=? WHERE record_key=?",
                         (record.model_dump_json(), row["record_key"]))
        return len(rows)

    @staticmethod
    def reject_result(conn: sqlite3.Connection, key: str, project_id: int, task_id: int,
                      annotation_id: int | None, field: str, reason: str, raw: Any) -> None:
        conn.execute(
            "INSERT INTO rejected_results VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (reject_key) DO UPDATE SET reason=excluded.reason, raw=excluded.raw",
            (key, project_id, task_id, annotation_id, field, reason,
             json.dumps(raw, sort_keys=True), _now()),
        )

    def records(self, include_deleted: bool = False, source: str | None = None,
                label: str | None = None) -> list[AnnotationRecord]:
        sql = "SELECT body FROM records WHERE 1=1"
        args: list[Any] = []
        if not include_deleted:
            sql += " AND deleted=0"
        if source:
            sql += " AND source=?"
            args.append(source)
        if label:
            sql += " AND label=?"
            args.append(label)
        sql += " ORDER BY trace_id, record_key"
        return [AnnotationRecord.model_validate_json(r["body"])
                for r in self.conn.execute(sql, args)]

    def rejected_results(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM rejected_results ORDER BY reject_key")]
