"""The record store: SQLite by default, PostgreSQL by URL; migrates itself when opened.

Every write that must be atomic (records with the sync cursor that covers them) happens
in one transaction through :meth:`Store.transaction`. Upserts are by natural keys, so
running an import or a sync twice changes nothing the second time.

Both engines speak one SQL dialect (``store/engine.py``); the tables are defined by the
migrations in ``store/migrations.py``. All SQL of the package lives in this package.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import StoreError
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.store.calibrations import CalibrationStore
from ls_llmtrace.store.collect import CollectStore
from ls_llmtrace.store.connectors import ConnectorStore
from ls_llmtrace.store.engine import (
    Connection,
    PgConnection,
    is_postgres_url,
    redact_url,
    sqlite_path,
    store_error,
    to_pg_ddl,
)
from ls_llmtrace.store.evals import EvalStore
from ls_llmtrace.store.exports import SyncExportStore
from ls_llmtrace.store.feedback import FeedbackQueries
from ls_llmtrace.store.journal import JournalStore
from ls_llmtrace.store.judge_evals import JudgeEvalStore
from ls_llmtrace.store.migrations import (
    _AFTER_MIGRATION,
    MIGRATIONS,
    RENAMED,
    rename_recorded,
)
from ls_llmtrace.store.queues import QueueStore


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


# One record row: written by the single and the batched upsert alike. ``trace_linked``
# says whether the record's trace is stored yet (a signal may arrive before its trace).
_UPSERT_RECORD = (
    "INSERT INTO records (record_key, trace_id, schema_id, schema_version, source, "
    "label, score, author, ls_project_id, ls_task_id, ls_annotation_id, deleted, "
    "updated_at, body, created_at, model_version, product_area, user_segment, "
    "judge_version, label_origin, adjudication, "
    "trace_linked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?, "
    "CASE WHEN EXISTS (SELECT 1 FROM traces WHERE trace_id=?) THEN 1 ELSE 0 END) "
    "ON CONFLICT (record_key) DO UPDATE SET trace_id=excluded.trace_id, "
    "schema_id=excluded.schema_id, schema_version=excluded.schema_version, "
    "source=excluded.source, label=excluded.label, score=excluded.score, "
    "author=excluded.author, ls_project_id=excluded.ls_project_id, "
    "ls_task_id=excluded.ls_task_id, ls_annotation_id=excluded.ls_annotation_id, "
    "deleted=excluded.deleted, updated_at=excluded.updated_at, body=excluded.body, "
    "created_at=excluded.created_at, model_version=excluded.model_version, "
    "product_area=excluded.product_area, user_segment=excluded.user_segment, "
    "judge_version=excluded.judge_version, label_origin=excluded.label_origin, "
    "adjudication=excluded.adjudication, trace_linked=excluded.trace_linked")


def _record_row(record: AnnotationRecord, body: str) -> tuple[Any, ...]:
    # only text dimensions are stored as columns (a client may send anything)
    dims = [v if isinstance(v := record.metadata.get(d), str) else None for d in _DIMENSIONS]
    return (record.record_key, record.trace_id, record.schema_id, record.schema_version,
            record.source.value, record.label, record.score, record.author,
            record.ls_project_id, record.ls_task_id, record.ls_annotation_id,
            int(record.deleted), _iso(record.updated_at), body,
            _iso(record.created_at or record.updated_at), *dims,
            record.prediction.model_version if record.prediction else None,
            record.origins.get("label"), int(record.adjudication), record.trace_id)


# the store --------------------------------------------------------------------------------


@dataclass
class RecordFilter:
    """Filters of :meth:`Store.records`; ``None`` means any. Times compare the record's
    ``created_at`` (when the feedback was given). Trace dimensions come from the trace
    when it is known, else from the signal itself."""

    source: str | None = None
    label: str | None = None
    schema_id: str | None = None
    schema_version: int | None = None
    model_version: str | None = None
    product_area: str | None = None
    user_segment: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    trace_id: str | None = None
    unlinked: bool = False
    include_deleted: bool = False


# Dimensions of a record: the trace's own metadata wins over what the signal carried.
_DIMENSIONS = ("model_version", "product_area", "user_segment")
_DIM_SQL = {d: f"COALESCE(t.{d}, r.{d})" for d in _DIMENSIONS}


class Store(JournalStore, QueueStore, FeedbackQueries, EvalStore, JudgeEvalStore,
            CalibrationStore, SyncExportStore, ConnectorStore, CollectStore):
    """Open (and migrate) the store at ``url`` (default: settings.db_url()).

    A store that cannot be used (locked by another writer for longer than
    ``busy_timeout`` seconds, read-only, not a database, unreachable) raises a
    :class:`StoreError` that names it and says what to do, when opening, migrating or
    writing in :meth:`transaction`.
    """

    def __init__(self, url: str | None = None, busy_timeout: float = 30.0) -> None:
        self.url = url or settings.db_url()
        self.dialect = "postgresql" if is_postgres_url(self.url) else "sqlite"
        self.conn: Connection
        if self.dialect == "postgresql":
            self.where = redact_url(self.url)
            self.conn = PgConnection(self.url)
        else:
            path = sqlite_path(self.url)
            self.where = str(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's directory {path.parent}: "
                                 f"{exc.strerror}; set LS_LLMTRACE_DB") from exc
            try:
                conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout,
                                       check_same_thread=False)
            except sqlite3.Error as exc:
                raise (store_error(exc, self.where, "opening it")
                       or StoreError(f"cannot open the store {path}: {exc}")) from exc
            conn.row_factory = sqlite3.Row
            self.conn = conn
        try:
            if self.dialect == "sqlite":
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA foreign_keys=ON")
            else:  # wait for another session's locks as long as SQLite would
                self.conn.execute(f"SET lock_timeout = {max(1, int(busy_timeout * 1000))}")
            self.migrate()
        except Exception as exc:
            self.conn.close()
            error = store_error(exc, self.where, "opening it")
            if error is None:
                raise
            raise error from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; a database failure in it (at BEGIN, in the body or at
        COMMIT) is rolled back and raised as a StoreError."""
        try:
            self.conn.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        except Exception as exc:
            error = store_error(exc, self.where, "starting a write")
            if error is None:
                raise
            raise error from exc
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(Exception):  # no transaction left to roll back is fine
                self.conn.execute("ROLLBACK")
            error = store_error(exc, self.where, "writing")
            if error is None:
                raise
            raise error from exc

    def migrate(self) -> list[str]:
        """Apply pending migrations, each in its own transaction; return their names.

        Applied migrations are read first, so opening an up-to-date store takes no write
        lock (a long sync in another process does not block it)."""
        if self.dialect == "postgresql":
            # Two processes opening a blank database at once: one migrates, one waits.
            self.conn.execute("SELECT pg_advisory_lock(71066)")
        try:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r["name"] for r in self.conn.execute("SELECT name FROM migrations")}
            if done & set(RENAMED):  # a store written before the migrations got their names
                with self.transaction() as conn:
                    rename_recorded(conn)
                done = {r["name"] for r in self.conn.execute("SELECT name FROM migrations")}
            applied = []
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                with self.transaction() as conn:
                    row = conn.execute("SELECT 1 FROM migrations WHERE name=?", (name,))
                    if row.fetchone() is not None:  # another process applied it meanwhile
                        continue
                    if self.dialect == "postgresql":
                        sql = to_pg_ddl(sql)
                    for statement in filter(str.strip, sql.split(";")):
                        conn.execute(statement)
                    if name in _AFTER_MIGRATION:
                        _AFTER_MIGRATION[name](conn)
                    conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
                applied.append(name)
            return applied
        finally:
            if self.dialect == "postgresql":
                with suppress(Exception):  # a failed open must report its own error
                    self.conn.execute("SELECT pg_advisory_unlock(71066)")

    def tables(self) -> list[str]:
        if self.dialect == "postgresql":
            rows = self.conn.execute(
                "SELECT table_name AS name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name")
        else:
            rows = self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")  # not sqlite_sequence
        return [r["name"] for r in rows]

    # traces -----------------------------------------------------------------------------

    def upsert_traces(self, traces: Iterable[Trace]) -> int:
        """Insert or update traces; link waiting signals. Returns how many records were
        linked to a trace that arrived after them."""
        now = _now()
        rows = [(t.trace_id, t.source, t.model_dump_json(exclude_defaults=True), now,
                 t.metadata.model_version, t.metadata.product_area, t.metadata.user_segment)
                for t in traces]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO traces (trace_id, source, body, imported_at, model_version, "
                "product_area, user_segment) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (trace_id) DO UPDATE SET source=excluded.source, "
                "body=excluded.body, model_version=excluded.model_version, "
                "product_area=excluded.product_area, user_segment=excluded.user_segment",
                rows,
            )
            return link_waiting_records(conn, [r[0] for r in rows])

    def trace(self, trace_id: str) -> Trace | None:
        row = self.conn.execute("SELECT body FROM traces WHERE trace_id=?", (trace_id,)).fetchone()
        return Trace.model_validate_json(row["body"]) if row else None

    def has_trace(self, trace_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM traces WHERE trace_id=?", (trace_id,)).fetchone()
        return row is not None

    # projects and the task ledger --------------------------------------------------------

    def remember_project(self, project_id: int, queue: str, schema_id: str, version: int,
                         title: str) -> None:
        with self.transaction() as conn:
            self.upsert_project(conn, project_id, queue, schema_id, version, title)

    @staticmethod
    def upsert_project(conn: Connection, project_id: int, queue: str, schema_id: str,
                       version: int, title: str) -> None:
        """A project's queue and schema version, inside the caller's transaction."""
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
    def set_cursor(conn: Connection, project_id: int, updated_at: datetime) -> None:
        conn.execute(
            "INSERT INTO sync_cursors VALUES (?, ?, ?) ON CONFLICT (project_id) DO UPDATE "
            "SET updated_at=excluded.updated_at, synced_at=excluded.synced_at",
            (project_id, updated_at.isoformat(), _now()),
        )

    @staticmethod
    def upsert_record(conn: Connection, record: AnnotationRecord) -> bool:
        """Insert or update one record; True if anything changed."""
        body = record.model_dump_json()
        old = conn.execute(
            "SELECT body FROM records WHERE record_key=?", (record.record_key,)
        ).fetchone()
        if old is not None and old["body"] == body:
            return False
        conn.execute(_UPSERT_RECORD, _record_row(record, body))
        return True

    @staticmethod
    def upsert_records(conn: Connection, records: Iterable[AnnotationRecord]) -> int:
        """:meth:`upsert_record` for many records, in the caller's transaction, with the
        same result (records applied in order; returns how many changed anything): the
        stored bodies are read 500 keys at a time, then the changed rows are written in
        one ``executemany`` (on PostgreSQL psycopg sends it as one pipeline)."""
        items = [(r, r.model_dump_json()) for r in records]
        keys = list(dict.fromkeys(r.record_key for r, _ in items))
        current: dict[str, str] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            for row in conn.execute(
                    f"SELECT record_key, body FROM records WHERE record_key IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                current[row["record_key"]] = row["body"]
        changed = 0
        rows: dict[str, tuple[Any, ...]] = {}  # the last change of each key wins
        for record, body in items:
            if current.get(record.record_key) == body:
                continue
            current[record.record_key] = body
            rows.pop(record.record_key, None)
            rows[record.record_key] = _record_row(record, body)
            changed += 1
        conn.executemany(_UPSERT_RECORD, list(rows.values()))
        return changed

    @staticmethod
    def live_annotation_ids(conn: Connection, project_id: int, task_id: int) -> set[int]:
        # No condition on ls_annotation_id here: SQLite would then pick the
        # (project, annotation) index and scan the project once per task.
        rows = conn.execute(
            "SELECT ls_annotation_id FROM records WHERE ls_project_id=? AND ls_task_id=? "
            "AND deleted=0", (project_id, task_id),
        )
        return {int(r["ls_annotation_id"]) for r in rows if r["ls_annotation_id"] is not None}

    @staticmethod
    def mark_annotation_deleted(conn: Connection, project_id: int,
                                annotation_id: int) -> int:
        rows = conn.execute(
            "SELECT record_key, body FROM records WHERE ls_project_id=? AND ls_annotation_id=? "
            "AND deleted=0", (project_id, annotation_id),
        ).fetchall()
        return _mark_deleted(conn, rows)

    @staticmethod
    def remember_synced_tasks(conn: Connection, project_id: int, task_ids: Iterable[int]) -> None:
        """The tasks the sync has seen in a project (to notice deleted tasks)."""
        conn.executemany(
            "INSERT INTO sync_tasks (project_id, task_id) VALUES (?, ?) "
            "ON CONFLICT (project_id, task_id) DO NOTHING",
            [(project_id, t) for t in task_ids])

    def synced_task_count(self, project_id: int) -> int:
        row = self.conn.execute("SELECT COUNT(*) AS n FROM sync_tasks WHERE project_id=?",
                                (project_id,)).fetchone()
        return int(row["n"])

    def synced_task_ids(self, project_id: int) -> set[int]:
        rows = self.conn.execute("SELECT task_id FROM sync_tasks WHERE project_id=?",
                                 (project_id,))
        return {int(r["task_id"]) for r in rows}

    @staticmethod
    def forget_deleted_task(conn: Connection, project_id: int, task_id: int) -> int:
        """A task deleted in Label Studio: its records are marked deleted, the task leaves
        the ledgers (so importing its trace again makes a new task). Returns records marked."""
        rows = conn.execute(
            "SELECT record_key, body FROM records WHERE ls_project_id=? AND ls_task_id=? "
            "AND deleted=0", (project_id, task_id),
        ).fetchall()
        conn.execute("DELETE FROM sync_tasks WHERE project_id=? AND task_id=?",
                     (project_id, task_id))
        conn.execute("DELETE FROM ls_tasks WHERE project_id=? AND task_id=?",
                     (project_id, task_id))
        return _mark_deleted(conn, rows)

    @staticmethod
    def reject_result(conn: Connection, key: str, project_id: int, task_id: int,
                      annotation_id: int | None, field: str, reason: str, raw: Any) -> None:
        conn.execute(
            "INSERT INTO rejected_results VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (reject_key) DO UPDATE SET reason=excluded.reason, raw=excluded.raw",
            (key, project_id, task_id, annotation_id, field, reason,
             json.dumps(raw, sort_keys=True, default=str), _now()),
        )

    @staticmethod
    def reject_feedback(conn: Connection, key: str, channel: str | None, origin: str,
                        reason: str, raw: Any) -> None:
        """Keep aside a feedback item that could not be mapped, with the reason."""
        conn.execute(
            "INSERT INTO rejected_feedback VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (reject_key) DO UPDATE SET reason=excluded.reason, "
            "origin=excluded.origin, seen_at=excluded.seen_at",
            (key, channel, origin, reason, json.dumps(raw, sort_keys=True, default=str),
             _now()),
        )

    def rejected_feedback(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM rejected_feedback ORDER BY seen_at, reject_key")]

    # reading ----------------------------------------------------------------------------

    def _where(self, f: RecordFilter) -> tuple[str, list[Any]]:
        sql = " WHERE 1=1"
        args: list[Any] = []
        if not f.include_deleted:
            sql += " AND r.deleted=0"
        for column, value in (("r.source", f.source), ("r.label", f.label),
                              ("r.schema_id", f.schema_id),
                              ("r.schema_version", f.schema_version),
                              ("r.trace_id", f.trace_id)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        for dim in _DIMENSIONS:
            value = getattr(f, dim)
            if value is not None:
                sql += f" AND {_DIM_SQL[dim]}=?"
                args.append(value)
        if f.since is not None:
            sql += " AND r.created_at>=?"
            args.append(_iso(f.since))
        if f.until is not None:
            sql += " AND r.created_at<?"
            args.append(_iso(f.until))
        if f.unlinked:
            sql += " AND r.trace_linked=0"
        return sql, args

    def records(self, include_deleted: bool = False, source: str | None = None,
                label: str | None = None, where: RecordFilter | None = None,
                ) -> list[AnnotationRecord]:
        base = where or RecordFilter()
        # A copy: the caller's filter means the same after the call.
        f = dataclasses.replace(base, include_deleted=include_deleted or base.include_deleted,
                                source=source or base.source, label=label or base.label)
        clause, args = self._where(f)
        sql = ("SELECT r.body FROM records r LEFT JOIN traces t ON t.trace_id=r.trace_id"
               f"{clause}")
        records = [AnnotationRecord.model_validate_json(r["body"])
                   for r in self.conn.execute(sql, args)]
        # Sorted here, not in SQL: PostgreSQL's collation may order text differently.
        return sorted(records, key=lambda r: (r.trace_id, r.record_key))

    def record_facts(self, where: RecordFilter | None = None) -> list[dict[str, Any]]:
        """Flat rows for statistics: source, label, score, schema, the trace's dimensions,
        cancelled flag."""
        clause, args = self._where(where or RecordFilter())
        dims = ", ".join(f"{_DIM_SQL[d]} AS {d}" for d in _DIMENSIONS)
        sql = ("SELECT r.record_key, r.trace_id, r.source, r.label, r.score, r.schema_id, "
               f"r.schema_version, r.body, {dims} FROM records r "
               f"LEFT JOIN traces t ON t.trace_id=r.trace_id{clause} ORDER BY r.record_key")
        out = []
        for row in self.conn.execute(sql, args):
            fact = dict(row)
            body = json.loads(fact.pop("body"))
            fact["was_cancelled"] = bool(body.get("was_cancelled"))
            out.append(fact)
        return out

    def rejected_results(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(
            "SELECT * FROM rejected_results ORDER BY reject_key")]

    # span records of an edited annotation ---------------------------------------------------

    @staticmethod
    def retire_records_except(conn: Connection, project_id: int, annotation_id: int,
                              keep: set[str]) -> int:
        """Mark deleted the live records of one annotation whose keys are not in ``keep``
        (a span result removed when the annotation was edited)."""
        rows = conn.execute(
            "SELECT record_key, body FROM records WHERE ls_project_id=? AND ls_annotation_id=? "
            "AND deleted=0", (project_id, annotation_id),
        ).fetchall()
        return _mark_deleted(conn, [r for r in rows if r["record_key"] not in keep])

    @staticmethod
    def retire_judge_records_except(conn: Connection, project_id: int, keep: set[str]) -> int:
        """Mark deleted the live judge records of a project whose keys are not in ``keep``
        (predictions gone from Label Studio)."""
        rows = conn.execute(
            "SELECT record_key, body FROM records WHERE ls_project_id=? AND source=? "
            "AND deleted=0", (project_id, "judge"),
        ).fetchall()
        return _mark_deleted(conn, [r for r in rows if r["record_key"] not in keep])


def _mark_deleted(conn: Connection, rows: Iterable[Any]) -> int:
    count = 0
    for row in rows:
        record = AnnotationRecord.model_validate_json(row["body"])
        record = record.model_copy(update={"deleted": True})
        conn.execute("UPDATE records SET deleted=1, body=? WHERE record_key=?",
                     (record.model_dump_json(), row["record_key"]))
        count += 1
    return count


_CHUNK = 500  # ids per ``IN (...)``: well under either engine's limit on parameters


def link_waiting_records(conn: Connection, trace_ids: Sequence[str]) -> int:
    """Mark signals that were waiting for these traces as linked; return how many. One
    statement per 500 traces (the ``records_unlinked`` index finds the waiting ones)."""
    linked = 0
    ids = list(dict.fromkeys(trace_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        cursor = conn.execute(
            f"UPDATE records SET trace_linked=1 WHERE trace_linked=0 AND trace_id IN "
            f"({','.join('?' * len(chunk))})", chunk)
        linked += max(cursor.rowcount, 0)
    return linked


