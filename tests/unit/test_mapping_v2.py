"""mapping.py, v2 features: categories, ratings, answer and message spans; drift kept aside."""

from __future__ import annotations

from typing import Any

import pytest

from ls_llmtrace.records.mapping import map_annotation, span_record_key
from ls_llmtrace.schema.model import AnnotationSchema, load_schema

from .paths import LABEL_CONFIGS

PROJECT = 9
TASK = {"id": 50, "data": {"trace_id": "t-1"}}


@pytest.fixture(scope="module")
def v2() -> AnnotationSchema:
    return load_schema(LABEL_CONFIGS / "default.v2.yaml")


def choices(name: str, *values: str) -> dict[str, Any]:
    return {"from_name": name, "to_name": "answer", "type": "choices",
            "value": {"choices": list(values)}}


def rating(stars: Any) -> dict[str, Any]:
    return {"from_name": "score", "to_name": "answer", "type": "rating",
            "value": {"rating": stars}}


def answer_span(rid: str, start: Any, end: Any, *labels: str) -> dict[str, Any]:
    return {"id": rid, "from_name": "answer_spans", "to_name": "answer", "type": "labels",
            "value": {"start": start, "end": end, "text": "open 24h", "labels": list(labels)}}


def message_span(rid: str, index: str, start: int, end: int, *labels: str,
                 last: str | None = None) -> dict[str, Any]:
    return {"id": rid, "from_name": "message_spans", "to_name": "conversation",
            "type": "paragraphlabels",
            "value": {"start": index, "end": last or index, "startOffset": start,
                      "endOffset": end, "text": "sunny", "paragraphlabels": list(labels)}}


def annotation(*result: dict[str, Any]) -> dict[str, Any]:
    return {"id": 700, "result": list(result), "completed_by": 1,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:01:00Z"}


def test_categories_rating_and_spans(v2):
    out = map_annotation(TASK, annotation(
        choices("verdict", "fail"), choices("categories", "hallucination", "unsafe"), rating(2),
        answer_span("a1", 10, 18, "unsupported_claim"),
        message_span("m1", "3", 43, 48, "wrong_fact")), v2, PROJECT)
    assert out.rejects == []
    trace, answer, message = out.records
    assert trace.record_key == "ls:9:700" and trace.scope.kind == "trace"
    assert (trace.label, trace.labels, trace.score) == ("fail", ["hallucination", "unsafe"], 0.25)
    assert trace.schema_version == 2
    assert answer.record_key == "ls:9:700:a1"
    assert answer.scope.model_dump(exclude_none=True) == {
        "kind": "text_range", "target": "answer", "start": 10, "end": 18, "text": "open 24h"}
    assert answer.labels == ["unsupported_claim"] and answer.label is None
    assert message.record_key == "ls:9:700:m1"
    assert message.scope.model_dump(exclude_none=True) == {
        "kind": "text_range", "target": "message", "message_index": 3, "start": 43, "end": 48,
        "text": "sunny"}
    assert message.labels == ["wrong_fact"]
    for record in (answer, message):
        assert (record.trace_id, record.ls_task_id, record.ls_annotation_id) == ("t-1", 50, 700)
        assert record.schema_version == 2


@pytest.mark.parametrize(("stars", "score"), [(1, 0.0), (3, 0.5), (5, 1.0)])
def test_rating_rescaled(v2, stars, score):
    out = map_annotation(TASK, annotation(rating(stars)), v2, PROJECT)
    assert out.rejects == [] and out.records[0].score == score


@pytest.mark.parametrize("stars", [0, 6, 2.5, "3", True, None])
def test_bad_rating_rejected(v2, stars):
    out = map_annotation(TASK, annotation(choices("verdict", "pass"), rating(stars)), v2, PROJECT)
    assert [r.field for r in out.rejects] == ["score"]
    assert out.records[0].score is None and out.records[0].label == "pass"


def test_number_score_under_a_rating_schema_rejected(v2):
    result = {"from_name": "score", "to_name": "answer", "type": "number", "value": {"number": 0.5}}
    out = map_annotation(TASK, annotation(result), v2, PROJECT)
    assert "of type 'number' is not in schema default@v2" in out.rejects[0].reason


def test_unknown_category_and_span_label_rejected(v2):
    out = map_annotation(TASK, annotation(
        choices("verdict", "fail"), choices("categories", "rude"),
        answer_span("a1", 0, 4, "typo"), message_span("m1", "0", 0, 3, "rude")), v2, PROJECT)
    assert sorted(r.field for r in out.rejects) == ["answer_spans", "categories",
                                                    "message_spans"]
    assert any("'rude'" in r.reason and "default@v2" in r.reason for r in out.rejects)
    assert len(out.records) == 1 and out.records[0].labels == []


def test_categories_on_a_passing_verdict_rejected(v2):
    out = map_annotation(TASK, annotation(choices("categories", "unsafe"),
                                          choices("verdict", "pass")), v2, PROJECT)
    (reject,) = out.rejects
    assert reject.field == "categories" and "not failing" in reject.reason
    assert out.records[0].labels == [] and out.records[0].label == "pass"


@pytest.mark.parametrize("span", [
    answer_span("a", 9, 3, "wrong_fact"),
    answer_span("a", -1, 3, "wrong_fact"),
    answer_span("a", "x", 3, "wrong_fact"),
    message_span("m", "x", 0, 3, "wrong_fact"),
    message_span("m", "4", 0, 3, "wrong_fact", last="2"),
])
def test_bad_span_offsets_rejected(v2, span):
    out = map_annotation(TASK, annotation(span), v2, PROJECT)
    assert len(out.rejects) == 1 and "invalid" in out.rejects[0].reason
    assert len(out.records) == 1


def test_span_across_messages_keeps_the_last_index(v2):
    out = map_annotation(TASK, annotation(message_span("m", "1", 5, 2, "wrong_fact", last="2")),
                         v2, PROJECT)
    assert out.rejects == []
    assert out.records[1].scope.message_index == 1
    assert out.records[1].metadata == {"end_message_index": 2}


def test_span_target_not_in_schema_rejected():
    schema = load_schema(LABEL_CONFIGS / "default.v1.yaml")
    out = map_annotation(TASK, annotation(answer_span("a", 0, 3, "wrong_fact")), schema, PROJECT)
    assert out.rejects[0].field == "answer_spans"


def test_span_record_key_without_result_id_is_stable():
    result = answer_span("", 0, 3, "wrong_fact")
    key = span_record_key(1, 2, result)
    assert key.startswith("ls:1:2:h") and key == span_record_key(1, 2, dict(result))
    other = answer_span("", 0, 4, "wrong_fact")
    assert span_record_key(1, 2, other) != key


def test_non_object_result_rejected(v2):
    out = map_annotation(TASK, annotation("oops"), v2, PROJECT)  # type: ignore[arg-type]
    assert out.rejects[0].field == "result"


@pytest.mark.parametrize("value", ["pass", ["pass"], 3])
def test_value_that_is_not_an_object_rejected_not_raised(v2, value):
    """``"value": "pass"`` from an API client used to stop the sync with AttributeError."""
    bad = {"from_name": "verdict", "to_name": "answer", "type": "choices", "value": value}
    out = map_annotation(TASK, annotation(bad, choices("categories", "unsafe")), v2, PROJECT)
    assert [r.field for r in out.rejects] == ["verdict", "categories"]
    assert "not a JSON object" in out.rejects[0].reason and out.rejects[0].raw == bad
