"""The store's feedback queries, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import Store


def _signal(key: str, trace_id: str) -> AnnotationRecord:
    when = datetime(2025, 6, 1, tzinfo=UTC)
    return AnnotationRecord(record_key=key, trace_id=trace_id, schema_id="default",
                            schema_version=1, source=Source.end_user, label="fail",
                            created_at=when, updated_at=when)


def test_stored_record_and_unlinked_keys(store: Store) -> None:
    store.upsert_traces([Trace(trace_id="known")])
    keys = [f"thumbs:{i}" for i in range(1200)]  # more than one IN (...) chunk
    with store.transaction() as conn:
        for i, key in enumerate(keys):
            Store.upsert_record(conn, _signal(key, "known" if i % 2 else f"later-{i}"))
    with store.transaction() as conn:
        assert Store.stored_record(conn, "thumbs:1") == _signal("thumbs:1", "known")
        assert Store.stored_record(conn, "missing") is None
        waiting = Store.unlinked_keys(conn, [*keys, "missing"])
    assert waiting == {k for i, k in enumerate(keys) if i % 2 == 0}
    store.upsert_traces([Trace(trace_id="later-0")])  # the trace arrives: linked
    with store.transaction() as conn:
        assert "thumbs:0" not in Store.unlinked_keys(conn, keys)
