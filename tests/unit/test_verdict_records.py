"""Judge records in the store on SQLite and PostgreSQL: upserted by key (a second write of
the same prediction changes nothing), retired when their prediction is gone from Label
Studio, read back by the queue's verdict reader with the latest prediction deciding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ls_llmtrace.evals.judged import queue_verdicts
from ls_llmtrace.records.verdicts import map_prediction
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

from .paths import LABEL_CONFIGS

V1 = load_schema(LABEL_CONFIGS / "default.v1.yaml")
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _prediction(pid: int, label: str, version: str, minutes: int) -> dict[str, object]:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    return {"id": pid, "model_version": version, "score": 0.7, "created_at": at,
            "updated_at": at, "result": [
                {"from_name": "verdict", "to_name": "answer", "type": "choices",
                 "value": {"choices": [label]}}]}


def test_judge_records_upsert_retire_and_decide(store: Store) -> None:
    store.set_queue("review", 4, "default", 1, "review", "llmtrace review | default@v1")
    task = {"id": 11, "data": {"trace_id": "tr-1", "answer": "hello"}}
    other = {"id": 12, "data": {"trace_id": "tr-2", "answer": "bye"}}
    predictions = [(task, _prediction(1, "pass", "judge-a", 0)),
                   (task, _prediction(2, "fail", "judge-a", 5)),
                   (other, _prediction(3, "fail", "judge-a", 1)),
                   (other, _prediction(4, "pass", "judge-b", 2))]
    records = [r for t, p in predictions for r in map_prediction(t, p, V1, 4).records]
    with store.transaction() as conn:
        assert sum(store.upsert_record(conn, r) for r in records) == 4
    with store.transaction() as conn:
        assert sum(store.upsert_record(conn, r) for r in records) == 0  # unchanged
    qv = queue_verdicts(store, "review", schema_dir=LABEL_CONFIGS)
    assert qv.judge_version == "judge-a" and qv.judge_versions == {"judge-a": 2,
                                                                   "judge-b": 1}
    assert {i.trace_id: i.judge.label for i in qv.items if i.judge} == {"tr-1": "fail",
                                                                         "tr-2": "fail"}
    with store.transaction() as conn:
        keep = {"ls:4:prediction:1", "ls:4:prediction:3", "ls:4:prediction:4"}
        assert store.retire_judge_records_except(conn, 4, keep) == 1
        assert store.retire_judge_records_except(conn, 4, keep) == 0
    qv = queue_verdicts(store, "review", judge_version="judge-a", schema_dir=LABEL_CONFIGS)
    assert {i.trace_id: i.judge.label for i in qv.items if i.judge} == {"tr-1": "pass",
                                                                         "tr-2": "fail"}


def test_the_judges_explanation_control_is_the_judge_records_explanation() -> None:
    from ls_llmtrace.judging.judges import Verdict
    from ls_llmtrace.judging.predictions import to_results
    from ls_llmtrace.labelstudio.results import parse_config
    from ls_llmtrace.schema.labelconfig import build_label_config

    version = "llm-v3@default@v1"
    task = {"id": 9, "data": {"trace_id": "t-9", "answer": "It is sunny."}}
    result = to_results(parse_config(build_label_config(V1)),
                        Verdict(label="fail", score=0.1, confidence=0.9,
                                explanation="The tool said rain."), task["data"], version)
    at = T0.isoformat()
    mapped = map_prediction(task, {"id": 31, "model_version": version, "score": 0.9,
                                   "created_at": at, "updated_at": at, "result": result},
                            V1, 4)
    assert mapped.rejects == []
    [record] = mapped.records
    # the judge's words without the screen's heading; a reviewer record never gets them
    assert (record.source.value, record.label, record.explanation) == (
        "judge", "fail", "The tool said rain.")
