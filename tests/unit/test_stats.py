"""stats.py + `ls-llmtrace stats`: failure rates by model version, product area and user
segment, every source side by side, from records of every channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.models import AnnotationRecord, Source, Trace, TraceMetadata
from ls_llmtrace.records.feedback import ingest, load_mapping
from ls_llmtrace.records.stats import compute_stats, failing_labels, format_stats
from ls_llmtrace.store import RecordFilter, Store

REPO = Path(__file__).resolve().parents[2]


def _reviewer(key: str, trace_id: str, label: str | None, **extra) -> AnnotationRecord:
    return AnnotationRecord(record_key=key, trace_id=trace_id, schema_id="default",
                            schema_version=1, source=Source.reviewer, label=label,
                            created_at=datetime(2026, 5, 1, tzinfo=UTC), **extra)


def _fill(store: Store) -> None:
    store.upsert_traces([
        Trace(trace_id=f"a{i}", metadata=TraceMetadata(model_version="m-1", product_area="search",
                                                       user_segment="free"))
        for i in range(4)] + [
        Trace(trace_id=f"b{i}", metadata=TraceMetadata(model_version="m-2", product_area="search",
                                                       user_segment="pro"))
        for i in range(4)])
    with store.transaction() as conn:
        for i, label in enumerate(["fail", "fail", "pass", "pass"]):
            Store.upsert_record(conn, _reviewer(f"ls:1:{i}", f"a{i}", label))
        for i, label in enumerate(["pass", "pass", "pass", "fail"]):
            Store.upsert_record(conn, _reviewer(f"ls:1:{10 + i}", f"b{i}", label))
        # skipped and deleted annotations do not count
        Store.upsert_record(conn, _reviewer("ls:1:98", "b0", None, was_cancelled=True))
        Store.upsert_record(conn, _reviewer("ls:1:99", "b1", "fail", deleted=True))
    mapping = load_mapping()
    signals = [
        {"channel": "thumbs", "trace_id": "a0", "value": "down", "user_id": "u1"},
        {"channel": "thumbs", "trace_id": "a1", "value": "down", "user_id": "u1"},
        {"channel": "thumbs", "trace_id": "b0", "value": "up", "user_id": "u1"},
        {"channel": "support", "trace_id": "a2", "ticket_id": "T1", "category": "unsafe",
         "severity": "high"},
        {"channel": "qa", "trace_id": "b2", "score": 5},
        {"channel": "evaluator", "trace_id": "b3", "evaluator": "g", "score": 0.2},
        # the trace is not stored yet: counted under the dimensions the signal carried
        {"channel": "thumbs", "trace_id": "zz", "value": "down", "model_version": "m-3"},
    ]
    ingest(store, [(str(i), s) for i, s in enumerate(signals)], mapping)


def test_failure_rates_side_by_side(store, default_schema):
    _fill(store)
    stats = compute_stats(store.record_facts(),
                          failing_labels({("default", 1): default_schema}))
    assert stats["sources"] == ["end_user", "evaluator", "qa", "reviewer", "support"]
    by_model = {row["value"]: row for row in stats["by"]["model_version"]}
    assert set(by_model) == {"m-1", "m-2", "m-3"}
    m1, m2 = by_model["m-1"], by_model["m-2"]
    assert m1["sources"]["reviewer"]["failure_rate"] == 0.5
    assert m2["sources"]["reviewer"]["failure_rate"] == 0.25
    assert m2["sources"]["reviewer"]["records"] == 4  # cancelled and deleted left out
    assert m1["sources"]["end_user"] == {"records": 2, "labeled": 2, "failing": 2, "scored": 2,
                                         "failure_rate": 1.0, "mean_score": 0.0}
    assert m2["sources"]["end_user"]["failure_rate"] == 0.0
    assert m1["sources"]["support"]["failing"] == 1
    assert m2["sources"]["qa"]["failure_rate"] == 0.0
    assert m2["sources"]["evaluator"]["failure_rate"] == 1.0
    assert m1["all"]["failure_rate"] == round(5 / 7, 4)
    assert by_model["m-3"]["sources"]["end_user"]["failing"] == 1
    by_area = {row["value"]: row for row in stats["by"]["product_area"]}
    assert set(by_area) == {"search", "(unknown)"}
    assert by_area["search"]["all"]["records"] == 14
    by_segment = {row["value"]: row["all"]["failure_rate"]
                  for row in stats["by"]["user_segment"]}
    assert by_segment["free"] == round(5 / 7, 4)
    assert stats["totals"]["all"]["records"] == 15
    text = format_stats(stats)
    assert "model_version" in text and "m-1" in text and "100% (2/2)" in text


def test_time_window(store):
    _fill(store)
    old = store.record_facts(RecordFilter(until=datetime(2026, 5, 2, tzinfo=UTC)))
    assert {f["source"] for f in old} == {"reviewer"}


def test_stats_and_records_cli(tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    monkeypatch.setenv("LS_LLMTRACE_DB", db)
    monkeypatch.chdir(REPO)
    with Store(db) as store:
        _fill(store)
    runner = CliRunner()
    out = runner.invoke(main, ["stats", "--json"])
    assert out.exit_code == 0, out.output
    stats = json.loads(out.output)
    assert stats["totals"]["reviewer"]["failure_rate"] == 0.375
    text = runner.invoke(main, ["stats"])
    assert "end_user" in text.output and "product_area" in text.output
    listed = runner.invoke(main, ["records", "--json", "--model-version", "m-2",
                                  "--source", "reviewer", "--label", "fail"])
    assert [json.loads(x)["record_key"] for x in listed.output.splitlines()] == ["ls:1:13"]
    listed = runner.invoke(main, ["records", "--json", "--user-segment", "free",
                                  "--schema-version", "1", "--since", "2026-05-01",
                                  "--until", "2026-05-02"])
    assert len(listed.output.splitlines()) == 4
    waiting = runner.invoke(main, ["records", "--unlinked"])
    assert waiting.output.startswith("zz\tend_user\tfail")
    bad = runner.invoke(main, ["records", "--source", "twitter"])
    assert bad.exit_code == 2
