"""store.py: migrations, idempotent upserts, deletion, task ledger, sync cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ls_llmtrace.errors import StoreError
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import Store
from ls_llmtrace.store.engine import sqlite_path
from ls_llmtrace.store.migrations import MIGRATIONS

EXPECTED_TABLES = {"migrations", "traces", "projects", "ls_tasks", "sync_cursors", "records",
                   "rejected_results", "sync_tasks", "rejected_feedback"}
EXPECTED_TABLES |= {"schema_migration_runs", "schema_migration_items",  # migration journal
                    "schema_migration_reviews"}
EXPECTED_TABLES |= {"queue_items", "store_locks", "pair_candidates"}  # queues
EXPECTED_TABLES |= {"queues"}  # the queue registry
EXPECTED_TABLES |= {"eval_runs", "eval_candidates"}  # the regression gate
EXPECTED_TABLES |= {"judge_evaluations"}  # the judge gate
EXPECTED_TABLES |= {"judge_calibrations"}  # calibrate
EXPECTED_TABLES |= {"adjudication_queues"}  # adjudication of reviewer disagreements
EXPECTED_TABLES |= {"sync_exports"}  # first syncs' snapshot exports
EXPECTED_TABLES |= {"connector_cursors", "connector_pushes"}  # connectors to tracing tools
EXPECTED_TABLES |= {"collect_spool", "collect_traces", "collect_rejects"}  # the OTLP receiver


def _record(key: str = "ls:1:10", **changes) -> AnnotationRecord:
    tail = key.split(":")[-1]
    base = dict(record_key=key, trace_id="t1", schema_id="default", schema_version=1,
                source=Source.reviewer, label="fail", score=0.2, author="a@example.com",
                ls_project_id=1, ls_task_id=100,
                ls_annotation_id=int(tail) if tail.isdigit() else None,
                created_at=datetime(2025, 6, 1, tzinfo=UTC),
                updated_at=datetime(2025, 6, 1, tzinfo=UTC))
    base.update(changes)
    return AnnotationRecord(**base)


def test_blank_database_migrates_to_expected_tables(store_url, tmp_path):
    path = tmp_path / "sub" / "store.sqlite"
    if store_url.startswith("sqlite"):
        store_url = "sqlite:///" + str(path)
    with Store(store_url) as store:
        assert path.exists() == store_url.startswith("sqlite")
        assert set(store.tables()) == EXPECTED_TABLES
        assert len(store.tables()) == len(EXPECTED_TABLES)
        names = [r["name"] for r in store.conn.execute("SELECT name FROM migrations")]
        assert names == [name for name, _ in MIGRATIONS]


def test_reopening_applies_nothing(store_url):
    url = store_url
    Store(url).close()
    with Store(url) as again:
        assert again.migrate() == []
        count = again.conn.execute("SELECT COUNT(*) AS n FROM migrations").fetchone()["n"]
        assert count == len(MIGRATIONS)
        assert set(again.tables()) == EXPECTED_TABLES


def test_store_recorded_under_old_migration_names_applies_nothing_twice(store_url):
    """A store created when the migrations were named after issues keeps working: the old
    names are renamed on open and no migration runs again (re-running one would fail on
    its CREATE TABLE, or run its backfill twice)."""
    from ls_llmtrace.store.migrations import RENAMED

    with Store(store_url) as store:
        for old, new in RENAMED.items():
            store.conn.execute("UPDATE migrations SET name=? WHERE name=?", (old, new))
        recorded = {r["name"] for r in store.conn.execute("SELECT name FROM migrations")}
        assert set(RENAMED) <= recorded
    with Store(store_url) as again:
        assert again.migrate() == []
        names = [r["name"] for r in again.conn.execute("SELECT name FROM migrations")]
        assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
        assert set(again.tables()) == EXPECTED_TABLES


def test_first_migrate_reports_what_it_applied(store_url):
    store = Store(store_url)
    try:
        store.conn.execute("DELETE FROM migrations")
        for table in EXPECTED_TABLES - {"migrations"}:
            store.conn.execute(f"DROP TABLE {table}")
        assert store.migrate() == [name for name, _ in MIGRATIONS]
    finally:
        store.close()


def test_unsupported_url_is_store_error():
    with pytest.raises(StoreError, match="sqlite:///"):
        sqlite_path("mysql://localhost/db")
    with pytest.raises(StoreError, match="sqlite:///.*postgresql://"):
        Store("mysql://localhost/db")


def test_upsert_record_true_false_true(store):
    record = _record()
    with store.transaction() as conn:
        assert Store.upsert_record(conn, record) is True
    with store.transaction() as conn:
        assert Store.upsert_record(conn, _record()) is False
    with store.transaction() as conn:
        assert Store.upsert_record(conn, _record(label="pass", score=0.9)) is True
    (stored,) = store.records()
    assert stored.label == "pass" and stored.score == 0.9
    row = store.conn.execute("SELECT label, score FROM records").fetchone()
    assert (row["label"], row["score"]) == ("pass", 0.9)


def test_records_round_trip_and_filters(store):
    with store.transaction() as conn:
        Store.upsert_record(conn, _record("ls:1:10", trace_id="t2"))
        Store.upsert_record(conn, _record("ls:1:11", trace_id="t1", label="pass"))
        Store.upsert_record(conn, _record("judge:x", source=Source.judge))
    assert [r.record_key for r in store.records()] == ["judge:x", "ls:1:11", "ls:1:10"]
    assert [r.record_key for r in store.records(source="judge")] == ["judge:x"]
    assert [r.record_key for r in store.records(label="pass")] == ["ls:1:11"]
    assert store.records(source="reviewer", label="fail")[0] == _record("ls:1:10", trace_id="t2")


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.transaction() as conn:
        Store.upsert_record(conn, _record())
        raise RuntimeError("boom")
    assert store.records() == []


def test_mark_annotation_deleted(store):
    with store.transaction() as conn:
        Store.upsert_record(conn, _record("ls:1:10"))
        Store.upsert_record(conn, _record("ls:1:11"))
        assert Store.live_annotation_ids(conn, 1, 100) == {10, 11}
    with store.transaction() as conn:
        assert Store.mark_annotation_deleted(conn, 1, 10) == 1
        assert Store.mark_annotation_deleted(conn, 1, 10) == 0  # already deleted
        assert Store.mark_annotation_deleted(conn, 2, 11) == 0  # other project
        assert Store.live_annotation_ids(conn, 1, 100) == {11}
    assert [r.record_key for r in store.records()] == ["ls:1:11"]
    deleted = [r for r in store.records(include_deleted=True) if r.record_key == "ls:1:10"]
    assert len(deleted) == 1 and deleted[0].deleted is True
    # the same (undeleted) record arriving again is a change
    with store.transaction() as conn:
        assert Store.upsert_record(conn, _record("ls:1:10")) is True
    assert len(store.records()) == 2


def test_record_tasks_idempotent(store):
    store.record_tasks(5, [(1, "t1"), (2, "t2")])
    store.record_tasks(5, [(1, "t1"), (2, "t2")])
    store.record_tasks(5, [(9, "t1")])  # a trace already has its task: kept
    assert store.known_trace_ids(5) == {"t1", "t2"}
    assert store.known_trace_ids(6) == set()
    assert store.max_task_id(5) == 2
    assert store.max_task_id(6) == 0
    rows = store.conn.execute("SELECT COUNT(*) AS n FROM ls_tasks").fetchone()
    assert rows["n"] == 2


def test_cursor_round_trip(store):
    assert store.cursor(3) is None
    first = datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    with store.transaction() as conn:
        Store.set_cursor(conn, 3, first)
    assert store.cursor(3) == first
    later = datetime(2025, 6, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with store.transaction() as conn:
        Store.set_cursor(conn, 3, later)
    got = store.cursor(3)
    assert got == later and got.utcoffset() is not None
    assert store.cursor(4) is None


def test_traces_round_trip(store, sample_traces):
    store.upsert_traces(sample_traces.values())
    store.upsert_traces(sample_traces.values())  # idempotent
    n = store.conn.execute("SELECT COUNT(*) AS n FROM traces").fetchone()["n"]
    assert n == len(sample_traces)
    for trace_id, trace in sample_traces.items():
        assert store.trace(trace_id) == trace
    assert store.trace("missing") is None
    store.upsert_traces([Trace(trace_id="halueval-general-1", output="changed")])
    assert store.trace("halueval-general-1").output == "changed"


def test_remember_project(store):
    store.remember_project(1, "review", "default", 1, "Queue v1")
    store.remember_project(1, "review", "default", 2, "Queue v2")
    assert store.projects() == [{"project_id": 1, "queue": "review", "schema_id": "default",
                                 "schema_version": 2, "title": "Queue v2"}]


def test_reject_result_upserts(store):
    with store.transaction() as conn:
        Store.reject_result(conn, "k1", 1, 100, 10, "verdict", "bad", {"b": 1, "a": 2})
        Store.reject_result(conn, "k1", 1, 100, 10, "verdict", "worse", {"a": 3})
    (row,) = store.rejected_results()
    assert row["reason"] == "worse"
    assert row["raw"] == '{"a": 3}'
    assert row["field"] == "verdict"
