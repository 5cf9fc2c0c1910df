"""golden.py: failed traces with their corrected outputs become golden cases."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from itertools import count

from ls_llmtrace.evals.golden import export_golden, golden_cases, write_jsonl
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import Store

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
_ids = count(1)


def rec(trace_id: str, label: str | None, minutes: int = 0, **extra) -> AnnotationRecord:
    annotation_id = next(_ids)
    when = T0 + timedelta(minutes=minutes)
    base = dict(record_key=f"ls:1:{annotation_id}", trace_id=trace_id, schema_id="default",
                schema_version=1, source=Source.reviewer, label=label,
                author=f"rev{annotation_id}@example.com", created_at=when, updated_at=when,
                ls_project_id=1, ls_task_id=100, ls_annotation_id=annotation_id)
    base.update(extra)
    return AnnotationRecord(**base)


def put(store: Store, *records: AnnotationRecord) -> None:
    with store.transaction() as conn:
        for r in records:
            Store.upsert_record(conn, r)


def traces(*ids: str) -> list[Trace]:
    return [Trace.model_validate({
        "trace_id": i, "system_prompt": f"sys {i}",
        "messages": [{"role": "user", "content": f"question {i}"}],
        "documents": [{"id": "d", "content": f"doc {i}"}],
        "output": f"bad answer {i}",
        "metadata": {"model_version": "m-1", "prompt_version": "p-3"}}) for i in ids]


def by_trace(cases):
    return {c["trace_id"]: c for c in cases}


def test_only_failing_traces_with_corrected_output_and_input(store, default_schema):
    store.upsert_traces(traces("t-fail", "t-pass"))
    put(store,
        rec("t-fail", "fail", score=0.1, explanation="Wrong city.",
            corrected_output="The capital is Paris."),
        rec("t-pass", "pass", score=0.9))
    cases = golden_cases(store, default_schema)
    assert [c["trace_id"] for c in cases] == ["t-fail"]
    (case,) = cases
    assert case["case_id"] == "default:t-fail"
    assert case["schema_version"] == "default@v1"
    assert case["corrected_output"] == "The capital is Paris."
    assert case["bad_output"] == "bad answer t-fail"
    assert case["explanation"] == "Wrong city."
    assert case["label"] == "fail" and case["score"] == 0.1
    assert case["input"]["system_prompt"] == "sys t-fail"
    assert case["input"]["messages"] == [{"role": "user", "content": "question t-fail"}]
    assert case["input"]["documents"] == [{"id": "d", "content": "doc t-fail"}]
    assert case["rubric"] == default_schema.rubric["fail"].definition
    assert case["model_version"] == "m-1" and case["prompt_version"] == "p-3"
    assert case["annotation"].startswith("ls:1:")
    assert case["reviewer"].endswith("@example.com")


def test_latest_review_per_trace_wins(store, default_schema):
    store.upsert_traces(traces("now-pass", "now-fail"))
    late_fail = rec("now-fail", "fail", minutes=30, corrected_output="newest fix")
    put(store,
        rec("now-pass", "fail", minutes=0), rec("now-pass", "pass", minutes=10),
        rec("now-fail", "pass", minutes=0), late_fail,
        rec("now-fail", "fail", minutes=5, corrected_output="older fix"))
    cases = by_trace(golden_cases(store, default_schema))
    assert set(cases) == {"now-fail"}
    assert cases["now-fail"]["corrected_output"] == "newest fix"
    assert cases["now-fail"]["annotation"] == late_fail.record_key


def test_updated_at_beats_created_at(store, default_schema):
    store.upsert_traces(traces("t"))
    edited = rec("t", "fail", minutes=0, updated_at=T0 + timedelta(hours=2))
    put(store, edited, rec("t", "pass", minutes=60))
    assert [c["annotation"] for c in golden_cases(store, default_schema)] == [edited.record_key]


def test_ground_truth_wins(store, default_schema):
    store.upsert_traces(traces("gt-pass", "gt-fail"))
    gt_fail = rec("gt-fail", "fail", minutes=0, ground_truth=True, corrected_output="gt fix")
    put(store,
        rec("gt-pass", "pass", minutes=0, ground_truth=True),
        rec("gt-pass", "fail", minutes=60),
        gt_fail,
        rec("gt-fail", "pass", minutes=60))
    cases = by_trace(golden_cases(store, default_schema))
    assert set(cases) == {"gt-fail"}
    assert cases["gt-fail"]["corrected_output"] == "gt fix"
    assert cases["gt-fail"]["annotation"] == gt_fail.record_key


def test_cancelled_and_deleted_records_ignored(store, default_schema):
    store.upsert_traces(traces("cancel", "deleted", "cancel-only"))
    deleted = rec("deleted", "fail", minutes=60)
    put(store,
        rec("cancel", "pass", minutes=0),
        rec("cancel", "fail", minutes=60, was_cancelled=True),
        rec("deleted", "pass", minutes=0),
        deleted,
        rec("cancel-only", "fail", was_cancelled=True))
    assert by_trace(golden_cases(store, default_schema)).keys() == {"deleted"}
    with store.transaction() as conn:
        assert Store.mark_annotation_deleted(conn, 1, deleted.ls_annotation_id) == 1
    assert golden_cases(store, default_schema) == []


def test_unlabelled_review_does_not_override(store, default_schema):
    store.upsert_traces(traces("t"))
    put(store, rec("t", "fail", minutes=0), rec("t", None, minutes=60, explanation="note"))
    assert [c["trace_id"] for c in golden_cases(store, default_schema)] == ["t"]


def test_other_sources_and_schemas_ignored(store, default_schema):
    store.upsert_traces(traces("judged", "other-schema"))
    put(store,
        rec("judged", "fail", source=Source.judge),
        rec("other-schema", "fail", schema_id="other"))
    assert golden_cases(store, default_schema) == []


def test_case_for_trace_missing_from_store(store, default_schema):
    put(store, rec("ghost", "fail", corrected_output="fix"))
    (case,) = golden_cases(store, default_schema)
    assert case["trace_id"] == "ghost"
    assert case["input"] == {"system_prompt": None, "messages": None, "documents": None}
    assert case["bad_output"] is None
    assert case["corrected_output"] == "fix"


def test_cases_sorted_by_trace_and_export(store, default_schema, tmp_path):
    store.upsert_traces(traces("b", "a", "c"))
    put(store, rec("b", "fail"), rec("a", "fail"), rec("c", "pass"))
    cases = golden_cases(store, default_schema)
    assert [c["trace_id"] for c in cases] == ["a", "b"]
    buffer = io.StringIO()
    write_jsonl(cases, buffer)
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == cases
    out = tmp_path / "golden" / "default.jsonl"
    assert export_golden(store, default_schema, out) == 2
    assert [json.loads(line)["trace_id"] for line in out.read_text().splitlines()] == ["a", "b"]
    assert not out.with_suffix(".jsonl.tmp").exists()


def test_review_without_timestamps_does_not_crash(store, default_schema):
    store.upsert_traces(traces("t"))
    put(store, rec("t", "pass", created_at=None, updated_at=None), rec("t", "fail", minutes=5))
    # the dated review is the latest known one
    assert [c["label"] for c in golden_cases(store, default_schema)] == ["fail"]
