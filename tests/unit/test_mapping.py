"""mapping.py: Label Studio annotations -> AnnotationRecord, unknown values rejected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ls_llmtrace.models import Source
from ls_llmtrace.records.mapping import map_annotation, record_key

PROJECT = 7
TASK = {"id": 42, "data": {"trace_id": "trace-a", "answer": "x"},
        "meta": {"trace_id": "trace-a"}}


def verdict(value: str) -> dict[str, Any]:
    return {"from_name": "verdict", "to_name": "answer", "type": "choices",
            "value": {"choices": [value]}}


def score(number: Any) -> dict[str, Any]:
    return {"from_name": "score", "to_name": "answer", "type": "number",
            "value": {"number": number}}


def textarea(name: str, *texts: str) -> dict[str, Any]:
    return {"from_name": name, "to_name": "answer", "type": "textarea",
            "value": {"text": list(texts)}}


def annotation(result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base = {"id": 1001, "result": result, "completed_by": 3,
            "created_at": "2025-06-01T10:00:00.123456Z",
            "updated_at": "2025-06-01T10:05:00Z", "lead_time": 12.5}
    base.update(extra)
    return base


def test_full_pass_annotation(default_schema):
    out = map_annotation(TASK, annotation([verdict("pass"), score(1), textarea(
        "explanation", "Correct and complete.")]), default_schema, PROJECT,
        users={3: "rev@example.com"})
    assert out.rejects == []
    (rec,) = out.records
    assert rec.record_key == "ls:7:1001"
    assert rec.trace_id == "trace-a"
    assert rec.schema_id == "default" and rec.schema_version == 1
    assert rec.source is Source.reviewer
    assert rec.scope.kind == "trace"
    assert rec.label == "pass"
    assert rec.score == 1.0 and isinstance(rec.score, float)
    assert rec.explanation == "Correct and complete."
    assert rec.corrected_output is None
    assert rec.author == "rev@example.com"
    assert rec.ls_project_id == 7 and rec.ls_task_id == 42 and rec.ls_annotation_id == 1001
    assert rec.lead_time_s == 12.5
    assert rec.was_cancelled is False and rec.ground_truth is False and rec.deleted is False


def test_fail_annotation_with_explanation_and_corrected_output(default_schema):
    result = [verdict("fail"), score(0.35),
              textarea("explanation", "Says sunny;", "the tool said rainy."),
              textarea("corrected_output", "It is rainy and 57°F in Paris.")]
    out = map_annotation(TASK, annotation(result, ground_truth=True), default_schema, PROJECT)
    assert out.rejects == []
    (rec,) = out.records
    assert rec.label == "fail"
    assert rec.score == pytest.approx(0.35)
    assert rec.explanation == "Says sunny;\nthe tool said rainy."
    assert rec.corrected_output == "It is rainy and 57°F in Paris."
    assert rec.ground_truth is True
    assert default_schema.is_failing(rec.label)


def test_unknown_verdict_rejected_other_fields_kept(default_schema):
    out = map_annotation(TASK, annotation([verdict("maybe"), score(0.5),
                                           textarea("explanation", "Unsure.")]),
                         default_schema, PROJECT)
    (reject,) = out.rejects
    assert reject.field == "verdict"
    assert "maybe" in reject.reason and "default@v1" in reject.reason
    assert reject.raw == verdict("maybe")
    (rec,) = out.records
    assert rec.label is None
    assert rec.score == 0.5
    assert rec.explanation == "Unsure."


def test_two_verdict_choices_rejected(default_schema):
    bad = {"from_name": "verdict", "to_name": "answer", "type": "choices",
           "value": {"choices": ["pass", "fail"]}}
    out = map_annotation(TASK, annotation([bad]), default_schema, PROJECT)
    assert [r.field for r in out.rejects] == ["verdict"]
    assert out.records[0].label is None


@pytest.mark.parametrize("number", [1.5, -0.1, "0.5", None, float("nan")])
def test_bad_score_rejected(default_schema, number):
    out = map_annotation(TASK, annotation([verdict("fail"), score(number)]),
                         default_schema, PROJECT)
    (reject,) = out.rejects
    assert reject.field == "score"
    assert "0.0 to 1.0" in reject.reason
    assert out.records[0].score is None
    assert out.records[0].label == "fail"


def test_unknown_control_rejected(default_schema):
    stray = {"from_name": "sentiment", "to_name": "answer", "type": "choices",
             "value": {"choices": ["happy"]}}
    out = map_annotation(TASK, annotation([verdict("pass"), stray]), default_schema, PROJECT)
    (reject,) = out.rejects
    assert reject.field == "sentiment"
    assert "'sentiment'" in reject.reason and "'choices'" in reject.reason
    assert out.records[0].label == "pass"


def test_known_name_with_wrong_type_rejected(default_schema):
    wrong = {"from_name": "score", "to_name": "answer", "type": "textarea",
             "value": {"text": ["0.5"]}}
    out = map_annotation(TASK, annotation([wrong]), default_schema, PROJECT)
    assert [r.field for r in out.rejects] == ["score"]
    assert out.records[0].score is None


def test_control_not_in_this_schema_version_rejected(mini_schema):
    """The mini schema has no score/explanation: those results are rejected, not kept."""
    out = map_annotation(TASK, annotation([verdict("fail"), score(0.2),
                                           textarea("explanation", "why")]),
                         mini_schema, PROJECT)
    assert sorted(r.field for r in out.rejects) == ["explanation", "score"]
    assert all("mini@v2" in r.reason for r in out.rejects)
    (rec,) = out.records
    assert (rec.label, rec.score, rec.explanation) == ("fail", None, None)
    assert rec.schema_id == "mini" and rec.schema_version == 2


def test_cancelled_annotation(default_schema):
    out = map_annotation(TASK, annotation([], was_cancelled=True), default_schema, PROJECT)
    (rec,) = out.records
    assert rec.was_cancelled is True
    assert rec.label is None
    assert out.rejects == []


def test_completed_by_int_with_and_without_users_map(default_schema):
    ann = annotation([verdict("pass")], completed_by=3)
    mapped = map_annotation(TASK, ann, default_schema, PROJECT, users={3: "ann@example.com"})
    assert mapped.records[0].author == "ann@example.com"
    unmapped = map_annotation(TASK, ann, default_schema, PROJECT, users={4: "other@x"})
    assert unmapped.records[0].author == "user:3"


def test_completed_by_dict(default_schema):
    with_email = annotation([verdict("pass")], completed_by={"id": 9, "email": "bo@example.com"})
    assert map_annotation(TASK, with_email, default_schema, PROJECT).records[0].author == \
        "bo@example.com"
    id_only = annotation([verdict("pass")], completed_by={"id": 9})
    assert map_annotation(TASK, id_only, default_schema, PROJECT).records[0].author == "9"
    nobody = annotation([verdict("pass")], completed_by=None)
    assert map_annotation(TASK, nobody, default_schema, PROJECT).records[0].author is None


def test_created_at_with_z_is_aware_utc(default_schema):
    (rec,) = map_annotation(TASK, annotation([verdict("pass")]), default_schema,
                            PROJECT).records
    assert rec.created_at == datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert rec.created_at.utcoffset() == timedelta(0)
    assert rec.updated_at == datetime(2025, 6, 1, 10, 5, tzinfo=UTC)


def test_offset_timestamps_normalized_and_updated_defaults_to_created(default_schema):
    ann = annotation([verdict("pass")], created_at="2025-06-01T12:00:00+02:00", updated_at=None)
    (rec,) = map_annotation(TASK, ann, default_schema, PROJECT).records
    assert rec.created_at == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert rec.created_at.tzinfo is UTC
    assert rec.updated_at == rec.created_at


def test_record_key():
    assert record_key(3, 99) == "ls:3:99"
    assert record_key(PROJECT, 1001) == "ls:7:1001"


def test_trace_id_from_meta_when_data_lacks_it(default_schema):
    task = {"id": 5, "data": {"answer": "x"}, "meta": {"trace_id": "from-meta"}}
    (rec,) = map_annotation(task, annotation([verdict("pass")]), default_schema, 1).records
    assert rec.trace_id == "from-meta"
    assert rec.record_key == "ls:1:1001"


def test_task_without_trace_id_rejected(default_schema):
    task = {"id": 5, "data": {"answer": "x"}}
    out = map_annotation(task, annotation([verdict("pass")]), default_schema, PROJECT)
    assert out.records == []
    (reject,) = out.rejects
    assert reject.field == "data.trace_id"


def test_boolean_score_rejected(default_schema):
    out = map_annotation(TASK, annotation([score(True)]), default_schema, PROJECT)
    assert [r.field for r in out.rejects] == ["score"]
    assert out.records[0].score is None
