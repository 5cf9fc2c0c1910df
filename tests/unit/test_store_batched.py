"""Batched store writes mean exactly what the one-at-a-time writes mean: the batched
record upsert against ``upsert_record`` applied in order, and the set-based linking of
waiting signals, on both engines."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import Store


def _signal(key: str, trace_id: str, label: str, score: float) -> AnnotationRecord:
    return AnnotationRecord(
        record_key=key, trace_id=trace_id, schema_id="default", schema_version=1,
        source=Source.end_user, label=label, score=score, author="u@example.com",
        created_at=datetime(2025, 6, 1, tzinfo=UTC), updated_at=datetime(2025, 6, 1, tzinfo=UTC),
        metadata={"model_version": "m1"})


def _rows(store: Store) -> list[tuple[object, ...]]:
    return [tuple(r[i] for i in range(7)) for r in store.conn.execute(
        "SELECT record_key, trace_id, label, score, body, trace_linked, model_version "
        "FROM records ORDER BY record_key")]


@pytest.fixture()
def second_url(store_url, request, tmp_path):
    """Another blank store of the same engine."""
    if store_url.startswith("sqlite"):
        yield "sqlite:///" + str(tmp_path / "second.sqlite")
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def test_batched_upsert_is_the_single_upsert_in_order(store_url, second_url):
    """Random batches with repeated keys (same body, another body, back to the first) give
    the same counts and the same rows as ``upsert_record`` one by one."""
    rng = random.Random(7)
    with Store(store_url) as one, Store(second_url) as many:
        for s in (one, many):  # some signals have their trace already
            s.upsert_traces([Trace(trace_id="t0", output="x")])
        changed = 0
        for round_ in range(8):
            batch = [_signal(f"k{rng.randint(0, 30)}", f"t{rng.randint(0, 3)}",
                             rng.choice(["pass", "fail"]), rng.choice([0.0, 0.5, 1.0]))
                     for _ in range(rng.randint(1, 60))]
            with one.transaction() as conn:
                single = sum(Store.upsert_record(conn, r) for r in batch)
            with many.transaction() as conn:
                batched = Store.upsert_records(conn, batch)
            assert batched == single, round_
            assert _rows(one) == _rows(many), round_
            changed += single
        assert 0 < changed < sum(1 for _ in range(8)) * 60  # some changed, some did not


def test_batched_upsert_of_nothing_writes_nothing(store):
    with store.transaction() as conn:
        assert Store.upsert_records(conn, []) == 0
    assert store.records() == []


def test_waiting_signals_are_linked_when_their_traces_arrive(store):
    with store.transaction() as conn:
        Store.upsert_records(conn, [_signal(f"s{i}", f"t{i % 700}", "fail", 0.0)
                                    for i in range(1400)])
    assert len(store.records(where=None)) == 1400
    unlinked = store.conn.execute(
        "SELECT COUNT(*) AS n FROM records WHERE trace_linked=0").fetchone()["n"]
    assert unlinked == 1400
    # 600 of the 700 traces arrive (more than one chunk of ids), one of them twice
    linked = store.upsert_traces([Trace(trace_id=f"t{i}", output="o") for i in range(600)]
                                 + [Trace(trace_id="t5", output="again")])
    assert linked == 1200
    rows = store.conn.execute("SELECT trace_id, trace_linked FROM records").fetchall()
    assert {r["trace_id"] for r in rows if r["trace_linked"]} == {f"t{i}" for i in range(600)}
    assert store.upsert_traces([Trace(trace_id="t1", output="o")]) == 0  # already linked
