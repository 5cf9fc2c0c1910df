"""What the reviewer did with the judge's proposal: per-field origins and the parent
prediction on records (mapping), disagreements for adjudication, and the deciding rule
ranking the owner's adjudication."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.judging.judges.fewshot import deciding_records
from ls_llmtrace.models import AnnotationRecord, PredictionRef, Source
from ls_llmtrace.records.adjudication import disagreements
from ls_llmtrace.records.mapping import judge_of, map_annotation
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

from .test_mapping import PROJECT, annotation, score, textarea, verdict

LABEL_CONFIGS = Path(__file__).resolve().parents[2] / "label_configs"
VERSION = "llm-v3@default@v1"


def _task(*predictions: dict[str, Any]) -> dict[str, Any]:
    return {"id": 42, "data": {"trace_id": "trace-a", "answer": "an answer"},
            "predictions": list(predictions)}


def _prediction(pid: int, *result: dict[str, Any]) -> dict[str, Any]:
    return {"id": pid, "model_version": VERSION, "score": 0.7, "result": list(result)}


def _origin(entry: dict[str, Any], origin: str) -> dict[str, Any]:
    return {**entry, "origin": origin}


JUDGE = _prediction(5, verdict("fail"), score(0.2), textarea("explanation", "judge: wrong"))


@pytest.mark.parametrize(("version", "judge"), [
    ("llm-v3@default@v1", "llm"), ("learned-v2-abc@default@v2", "learned"),
    ("my-validator-v1@default@v1", "my-validator"),
    ("rules-v1@unknown-schema", "rules"), ("my-model", None), (None, None), ("@x", None)])
def test_judge_of(version, judge):
    assert judge_of(version) == judge


def test_ui_origins_are_kept_and_a_kept_judge_explanation_is_not_the_reviewers(
        default_schema):
    # what Label Studio's UI submits: origins on each result, parent_prediction set
    result = [_origin(verdict("pass"), "prediction-changed"),
              _origin(score(0.2), "prediction"),
              _origin(textarea("explanation", "judge: wrong"), "prediction")]
    out = map_annotation(_task(JUDGE), annotation(result, parent_prediction=5),
                         default_schema, PROJECT)
    (record,) = out.records
    assert record.label == "pass" and record.score == 0.2
    assert record.explanation is None
    assert record.origins == {"label": "prediction-changed", "score": "prediction",
                              "explanation": "prediction"}
    assert record.prediction == PredictionRef(id=5, model_version=VERSION, judge="llm")
    assert record.accepted("label") is False and record.accepted("score") is True
    assert record.accepted("corrected_output") is None


def test_api_annotation_origins_are_worked_out_from_the_parent_prediction(default_schema):
    # an API client sends no origin: the parent prediction's results decide
    result = [verdict("fail"), score(0.9), textarea("explanation", "judge: wrong"),
              textarea("corrected_output", "the fix")]
    out = map_annotation(_task(JUDGE), annotation(result, parent_prediction=5),
                         default_schema, PROJECT)
    (record,) = out.records
    assert record.origins == {"label": "prediction", "score": "prediction-changed",
                              "explanation": "prediction", "corrected_output": "manual"}
    assert record.explanation is None and record.corrected_output == "the fix"


def test_ui_says_prediction_but_the_value_differs(default_schema):
    result = [_origin(verdict("pass"), "prediction"),
              _origin(textarea("explanation", "my own words"), "prediction")]
    (record,) = map_annotation(_task(JUDGE), annotation(result, parent_prediction=5),
                               default_schema, PROJECT).records
    assert record.origins == {"label": "prediction-changed",
                              "explanation": "prediction-changed"}
    assert record.explanation == "my own words"


def test_same_value_given_by_hand_stays_manual(default_schema):
    result = [_origin(verdict("fail"), "manual")]
    (record,) = map_annotation(_task(JUDGE), annotation(result, parent_prediction=5),
                               default_schema, PROJECT).records
    assert record.origins == {"label": "manual"}


def test_no_parent_prediction(default_schema):
    plain = map_annotation(_task(JUDGE), annotation([verdict("fail")]), default_schema,
                           PROJECT).records[0]
    assert plain.prediction is None and plain.origins == {}
    ui = map_annotation(_task(), annotation([_origin(verdict("fail"), "manual")]),
                        default_schema, PROJECT).records[0]
    assert ui.origins == {"label": "manual"}


def test_parent_prediction_not_in_the_task(default_schema):
    # e.g. read from an export that lists prediction ids only: the UI's word is taken
    result = [_origin(verdict("fail"), "prediction"),
              _origin(textarea("explanation", "judge: wrong"), "prediction")]
    (record,) = map_annotation(_task(), annotation(result, parent_prediction={"id": 9}),
                               default_schema, PROJECT).records
    assert record.prediction == PredictionRef(id=9)
    assert record.origins == {"label": "prediction", "explanation": "prediction"}
    assert record.explanation is None


def test_span_origins():
    v2 = load_schema(LABEL_CONFIGS / "default.v2.yaml")

    def span(rid: str, start: int, end: int, *labels: str) -> dict[str, Any]:
        return {"id": rid, "from_name": "answer_spans", "to_name": "answer",
                "type": "labels", "value": {"start": start, "end": end, "labels": list(labels)}}

    labels = v2.span_field.labels if v2.span_field else []
    judge = _prediction(6, span("j1", 0, 2, labels[0]), span("j2", 3, 9, labels[0]))
    result = [span("r1", 0, 2, labels[0]),            # the judge's span, as proposed
              span("j2", 3, 5, labels[0]),            # the judge's region, resized
              _origin(span("r3", 6, 9, labels[0]), "manual")]
    records = map_annotation(_task(judge), annotation(
        [verdict("fail"), *result], parent_prediction=6), v2, PROJECT).records
    spans = {r.scope.start: r.origins.get("labels") for r in records
             if r.scope.kind == "text_range"}
    assert spans == {0: "prediction", 3: "prediction-changed", 6: "manual"}


def test_adjudication_flag_needs_the_owner(default_schema):
    users = {3: default_schema.owner, 4: "someone@example.com"}
    owner = map_annotation(_task(), annotation([verdict("fail")]), default_schema, PROJECT,
                           users, adjudication=True).records[0]
    other = map_annotation(_task(), annotation([verdict("fail")], completed_by=4),
                           default_schema, PROJECT, users, adjudication=True).records[0]
    outside = map_annotation(_task(), annotation([verdict("fail")]), default_schema,
                             PROJECT, users).records[0]
    assert (owner.adjudication, other.adjudication, outside.adjudication) == (
        True, False, False)


def _record(key: str, trace: str, author: str, label: str | None, minute: int,
            **extra: Any) -> AnnotationRecord:
    return AnnotationRecord(record_key=key, trace_id=trace, schema_id="default",
                            schema_version=1, source=Source.reviewer, author=author,
                            label=label,
                            updated_at=datetime(2025, 6, 1, 10, minute, tzinfo=UTC), **extra)


def test_disagreements():
    records = [
        _record("1", "t1", "a", "fail", 1), _record("2", "t1", "b", "pass", 2),
        _record("3", "t2", "a", "fail", 1), _record("4", "t2", "b", "fail", 2),
        # b changed their mind on t3: only their latest counts, and it agrees
        _record("5", "t3", "a", "pass", 1), _record("6", "t3", "b", "fail", 2),
        _record("7", "t3", "b", "pass", 3),
        # a cancelled or deleted review does not disagree
        _record("8", "t4", "a", "pass", 1), _record("9", "t4", "b", None, 2,
                                                      was_cancelled=True),
        _record("10", "t4", "c", "fail", 2, deleted=True),
        # the owner's adjudication is not a reviewer's vote
        _record("11", "t2", "owner", "pass", 5, adjudication=True),
        # one reviewer who overrode the judge
        _record("12", "t5", "a", "pass", 1, origins={"label": "prediction-changed"},
                prediction=PredictionRef(id=3, model_version=VERSION, judge="llm")),
    ]
    found = disagreements(records)
    assert [(d.trace_id, [r.record_key for r in d.reviews]) for d in found] == [
        ("t1", ["1", "2"])]
    assert found[0].reason == "reviewers disagree: a fail, b pass"
    with_judge = disagreements(records, with_judge=True)
    assert [d.trace_id for d in with_judge] == ["t1", "t5"]
    assert with_judge[1].reason == f"a changed the verdict of judge {VERSION}"


def test_deciding_rule_ranks_the_owners_adjudication():
    records = [_record("1", "t1", "a", "fail", 1), _record("2", "t1", "b", "pass", 9),
               _record("3", "t1", "owner", "fail", 5, adjudication=True),
               _record("4", "t2", "a", "fail", 1), _record("5", "t2", "owner", "pass", 0),
               _record("6", "t3", "a", "fail", 1, ground_truth=True),
               _record("7", "t3", "owner", "pass", 5, adjudication=True)]
    assert {t: r.record_key for t, r in deciding_records(records).items()} == {
        "t1": "3", "t2": "4", "t3": "6"}
    # an owner given by name also decides without the flag
    assert deciding_records(records, owner="owner")["t2"].record_key == "5"


def test_store_keeps_origin_columns(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    record = _record("ls:1:1", "t1", "a", "pass", 1, origins={"label": "prediction"},
                     prediction=PredictionRef(id=3, model_version=VERSION, judge="llm"),
                     adjudication=True)
    with store.transaction() as conn:
        assert store.upsert_record(conn, record)
        assert not store.upsert_record(conn, record)
    row = store.conn.execute("SELECT judge_version, label_origin, adjudication FROM records"
                             ).fetchone()
    assert (row["judge_version"], row["label_origin"], row["adjudication"]) == (
        VERSION, "prediction", 1)
    assert store.records()[0] == record
    store.set_adjudication_queue("q-adjudication", "q")
    store.set_adjudication_queue("q-adjudication", "q")
    assert store.adjudication_queues("q") == [
        {"queue": "q-adjudication", "source_queue": "q", "project_id": None}]
    store.close()


def test_queue_rule_reviewers():
    from ls_llmtrace.errors import ConfigError
    from ls_llmtrace.ingest.rules import parse_rules, single_queue

    config = parse_rules("queues:\n  - name: double\n    reviewers: 2\n    overlap_percent: 30\n"
                         "  - name: plain\n")
    assert [(q.reviewers, q.overlap_percent) for q in config.queues] == [(2, 30), (None, 100)]
    assert single_queue("q", 3).queues[0].reviewers == 3
    with pytest.raises(ConfigError, match="reviewers"):
        parse_rules("queues:\n  - name: none\n    reviewers: 0\n")


def test_the_judges_explanation_control_never_becomes_a_record_field(default_schema):
    judge_words = textarea("judge_explanation", "Judge llm-v3@default@v1:")
    judge_words["value"]["text"].append("says sunny; the tool said rainy")
    proposal = _prediction(6, verdict("fail"), score(0.2), judge_words)
    result = [_origin(verdict("fail"), "prediction"), _origin(score(0.2), "prediction"),
              _origin(judge_words, "prediction"),
              _origin(textarea("explanation", "my own words"), "manual")]
    out = map_annotation(_task(proposal), annotation(result, parent_prediction=6),
                         default_schema, PROJECT)
    assert out.rejects == []
    (record,) = out.records
    assert record.explanation == "my own words"
    assert record.origins == {"label": "prediction", "score": "prediction",
                              "explanation": "manual"}
    # submitted alone (the reviewer wrote nothing), the judge's words stay out of it
    alone = map_annotation(_task(proposal), annotation(result[:3], parent_prediction=6),
                           default_schema, PROJECT)
    assert alone.rejects == [] and alone.records[0].explanation is None
