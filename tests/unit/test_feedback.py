"""feedback.py: every channel maps onto records with the right source; natural keys make
re-sending safe; bad items are rejected with the field named; signals wait for traces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ls_llmtrace import settings
from ls_llmtrace.cli import main
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.models import Source, Trace, TraceMetadata
from ls_llmtrace.records.feedback import (
    FeedbackRejected,
    ingest,
    load_mapping,
    map_feedback,
    parse_item,
    read_feedback_file,
)
from ls_llmtrace.store import RecordFilter, Store

WHEN = "2026-05-01T10:00:00Z"


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(settings.feedback_mapping_path())


def thumb(value="down", **extra):
    return {"channel": "thumbs", "trace_id": "t1", "value": value, "user_id": "u9",
            "comment": "wrong city", "created_at": WHEN, **extra}


def ticket(**extra):
    return {"channel": "support", "trace_id": "t1", "ticket_id": "T-77",
            "category": "hallucination", "severity": "high", "summary": "made up a policy",
            "agent": "agent@help", **extra}


def qa(score=2, **extra):
    return {"channel": "qa", "trace_id": "t2", "score": score, "notes": "misses step 3",
            "reviewer": "qa@x", **extra}


def evaluator(**extra):
    return {"channel": "evaluator", "trace_id": "t3", "evaluator": "toxicity",
            "evaluator_version": "2", "score": 0.35, **extra}


def test_packaged_mapping_matches_schema_v1(mapping, default_schema):
    mapping.check_against(default_schema)
    assert (mapping.schema_ref.id, mapping.schema_ref.version) == ("default", 1)


def test_thumbs(mapping):
    down = map_feedback(parse_item(thumb()), mapping)
    assert down.source is Source.end_user
    assert (down.label, down.score, down.explanation, down.author) == \
        ("fail", 0.0, "wrong city", "u9")
    assert down.record_key == "thumbs:t1::u9"
    assert down.created_at == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert (down.schema_id, down.schema_version) == ("default", 1)
    up = map_feedback(parse_item(thumb("up")), mapping)
    assert (up.label, up.score, up.record_key) == ("pass", 1.0, down.record_key)


def test_support_ticket(mapping):
    rec = map_feedback(parse_item(ticket()), mapping)
    assert rec.source is Source.support
    assert (rec.label, rec.labels, rec.score) == ("fail", ["hallucination"], 0.25)
    assert rec.metadata == {"ticket_id": "T-77", "severity": "high"}
    assert rec.record_key == "support:T-77:t1"
    billing = map_feedback(parse_item(ticket(category="billing", severity="low")), mapping)
    assert (billing.label, billing.score) == ("pass", 0.75)


def test_support_unknown_category_and_severity_rejected(mapping):
    with pytest.raises(FeedbackRejected, match="category: 'weird' is not in the feedback"):
        map_feedback(parse_item(ticket(category="weird")), mapping)
    with pytest.raises(FeedbackRejected, match="severity: 'p0'"):
        map_feedback(parse_item(ticket(severity="p0")), mapping)


def test_qa_review_scale_and_threshold(mapping):
    low = map_feedback(parse_item(qa(2)), mapping)
    assert low.source is Source.qa
    assert (low.label, low.score, low.explanation, low.author) == \
        ("fail", 0.25, "misses step 3", "qa@x")
    high = map_feedback(parse_item(qa(4)), mapping)
    assert (high.label, high.score) == ("pass", 0.75)
    forced = map_feedback(parse_item(qa(5, label="fail")), mapping)
    assert (forced.label, forced.score) == ("fail", 1.0)
    with pytest.raises(FeedbackRejected, match="outside the scale 1.0-5.0"):
        map_feedback(parse_item(qa(7)), mapping)


def test_evaluator_per_evaluator_settings(mapping):
    tox = map_feedback(parse_item(evaluator()), mapping)
    assert tox.source is Source.evaluator
    # toxicity: lower is better, pass at 0.8 goodness -> 0.65 is a fail
    assert (tox.label, tox.score, tox.author) == ("fail", 0.65, "toxicity@2")
    assert tox.record_key == "evaluator:toxicity:2:t3:"
    rel = map_feedback(parse_item(evaluator(evaluator="relevance_1_10", score=10,
                                            evaluator_version=None)), mapping)
    assert (rel.label, rel.score) == ("pass", 1.0)
    plain = map_feedback(parse_item(evaluator(evaluator="exact", score=None, label="pass",
                                              span_id="s1")), mapping)
    assert (plain.label, plain.score, plain.scope.kind, plain.scope.span_id) == \
        ("pass", None, "span", "s1")


@pytest.mark.parametrize(("raw", "needle"), [
    ({"channel": "thumbs", "trace_id": "t", "value": "sideways"}, "value:"),
    ({"channel": "thumbs", "value": "up"}, "trace_id: Field required"),
    ({"channel": "thumbs", "trace_id": "t", "value": "up", "tumb": 1}, "tumb: Extra inputs"),
    ({"channel": "tweets", "trace_id": "t"}, "channel: must be one of"),
    ({"channel": "evaluator", "trace_id": "t", "evaluator": "e"}, "needs a score or a label"),
    ({"channel": "qa", "trace_id": "t", "score": "high"}, "score:"),
    (["not", "an", "object"], "must be a JSON object"),
])
def test_bad_items_name_the_field(raw, needle):
    with pytest.raises(FeedbackRejected) as info:
        parse_item(raw)
    assert needle in str(info.value)
    assert not str(info.value).startswith(("thumbs.", "qa.", "evaluator."))  # field, not tag


def test_client_id_is_the_key(mapping):
    rec = map_feedback(parse_item(thumb(id="fb-1")), mapping)
    assert rec.record_key == "thumbs:id:fb-1"


def test_mapping_errors_are_config_errors(tmp_path, default_schema):
    bad = tmp_path / "m.yaml"
    bad.write_text("schema: {id: default, version: 1}\nchannels:\n  qa:\n"
                   "    scale: {min: 5, max: 1}\n")
    with pytest.raises(ConfigError, match=r"m.yaml: channels.qa.scale.*above min"):
        load_mapping(bad)
    other = tmp_path / "o.yaml"
    other.write_text("schema: {id: default, version: 1}\nchannels:\n  support:\n"
                     "    categories: {rude: toxic}\n")
    with pytest.raises(ConfigError, match=r"labels \['toxic'\]"):
        load_mapping(other).check_against(default_schema)
    with pytest.raises(ConfigError, match="LS_LLMTRACE_FEEDBACK_MAPPING"):
        load_mapping(tmp_path / "missing.yaml")


def test_ingest_idempotent_and_rejects_kept(store, mapping, default_schema):
    items = [("a:1", thumb()), ("a:2", ticket()), ("a:3", qa()), ("a:4", evaluator()),
             ("a:5", {"channel": "thumbs", "trace_id": "t1"}),
             ("a:6", qa(5, label="maybe"))]
    first = ingest(store, items, mapping, default_schema)
    assert first.ids[:4] == ["thumbs:t1::u9", "support:T-77:t1", "qa:t2::qa@x",
                             "evaluator:toxicity:2:t3:"]
    assert first.ids[4:] == [None, None]
    assert (first.written, first.unchanged, first.waiting_for_trace) == (4, 0, 4)
    assert [r.where for r in first.rejected] == ["a:5", "a:6"]
    assert "label: 'maybe' is not one of" in first.rejected[1].reason
    again = ingest(store, items, mapping, default_schema)
    assert (again.written, again.unchanged) == (0, 4)
    assert {r.source for r in store.records()} == {Source.end_user, Source.support, Source.qa,
                                                     Source.evaluator}
    assert len(store.records()) == 4
    kept = store.rejected_feedback()
    assert [k["origin"] for k in kept] == ["a:5", "a:6"] and kept[0]["channel"] == "thumbs"
    # the user changes their mind: same key, new value
    flip = ingest(store, [("b:1", thumb("up"))], mapping)
    assert flip.written == 1
    assert store.records(source="end_user")[0].label == "pass"


def test_signal_waits_for_its_trace_then_links(store, mapping):
    ingest(store, [("x", thumb(trace_id="late", product_area="billing"))], mapping)
    waiting = store.records(where=RecordFilter(unlinked=True))
    assert [r.trace_id for r in waiting] == ["late"]
    # before the trace arrives, the signal's own dimensions are used
    assert [r.trace_id for r in store.records(where=RecordFilter(product_area="billing"))] == \
        ["late"]
    linked = store.upsert_traces([Trace(trace_id="late", metadata=TraceMetadata(
        model_version="m-2", product_area="search"))])
    assert linked == 1
    assert store.records(where=RecordFilter(unlinked=True)) == []
    # the trace's own metadata now wins
    assert [r.trace_id for r in store.records(where=RecordFilter(product_area="search"))] == \
        ["late"]
    assert [r.trace_id for r in store.records(where=RecordFilter(model_version="m-2"))] == \
        ["late"]
    assert store.upsert_traces([Trace(trace_id="late")]) == 0  # already linked
    # a signal for a trace already known is linked at once
    ingest(store, [("y", qa(trace_id="late"))], mapping)
    assert store.records(where=RecordFilter(unlinked=True)) == []


def test_read_jsonl_and_csv_with_bad_lines(tmp_path):
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_bytes(b'{"channel": "thumbs", "trace_id": "t", "value": "up"}\n\n'
                      b'{not json}\n' + b'\xff\xfe\n' + b'{"trace_id": "t", "value": "down"}\n')
    items = list(read_feedback_file(jsonl, channel="thumbs"))
    assert [w.rsplit(":", 1)[1] for w, _ in items] == ["1", "3", "4", "5"]
    assert items[3][1] == {"channel": "thumbs", "trace_id": "t", "value": "down"}
    assert "not valid JSON" in items[1][1].reason and "not UTF-8" in items[2][1].reason
    csv_file = tmp_path / "qa.csv"
    csv_file.write_text("trace_id,score,notes,reviewer\nt1,4,good,qa@x\nt2,,,\nt3,1,bad,qa@y,extra\n",
                        encoding="utf-8")
    rows = list(read_feedback_file(csv_file, channel="qa"))
    assert rows[0][1] == {"channel": "qa", "trace_id": "t1", "score": "4", "notes": "good",
                          "reviewer": "qa@x"}
    assert rows[1][1] == {"channel": "qa", "trace_id": "t2"}
    assert "more cells" in rows[2][1].reason
    assert rows[2][0].endswith("qa.csv:4")


def test_cli_feedback_import_with_rejects(tmp_path, monkeypatch):
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{db}")
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [
        thumb(), ticket(), qa(), evaluator(), {"channel": "support", "trace_id": "t9",
                                               "ticket_id": "T-1", "category": "weird",
                                               "severity": "low"}]) + "\n")
    runner = CliRunner()
    out = runner.invoke(main, ["feedback", "import", str(path)])
    assert out.exit_code == 0, out.output
    assert "4 signals accepted (4 written, 0 unchanged, 4 waiting for their trace), " \
        "1 rejected" in out.output
    assert "signals.jsonl:5: category: 'weird'" in out.output
    kept = tmp_path / "home" / "rejects" / "signals.jsonl.rejects.jsonl"
    (line,) = kept.read_text().splitlines()
    kept_row = json.loads(line)  # the same shape as the rejects of a trace import
    assert set(kept_row) == {"file", "location", "field", "reason", "raw"}
    assert (kept_row["file"], kept_row["location"]) == (str(path), "5")
    assert kept_row["raw"]["ticket_id"] == "T-1"
    again = runner.invoke(main, ["feedback", "import", str(path), "--strict"])
    assert again.exit_code == 4
    assert "(0 written, 4 unchanged" in again.output
    listed = runner.invoke(main, ["records", "--source", "support", "--json"])
    (rec,) = [json.loads(x) for x in listed.output.splitlines()]
    assert rec["labels"] == ["hallucination"]
    with Store(f"sqlite:///{db}") as store:
        assert len(store.records()) == 4


def test_store_records_from_an_importer_wait_and_link(store):
    """Evaluator scores an importer found inside traces go through store_records."""
    from ls_llmtrace.models import AnnotationRecord
    from ls_llmtrace.records.feedback import store_records

    rec = AnnotationRecord(record_key="langfuse:score:s1", trace_id="imp-1", schema_id="default",
                           schema_version=1, source=Source.evaluator, score=0.4,
                           label="fail", author="langfuse:helpfulness")
    assert store_records(store, [rec]) == 1
    assert store_records(store, [rec]) == 0
    assert [r.record_key for r in store.records(where=RecordFilter(unlinked=True))] == \
        ["langfuse:score:s1"]
    assert store.upsert_traces([Trace(trace_id="imp-1")]) == 1
    assert store.records(where=RecordFilter(unlinked=True)) == []
