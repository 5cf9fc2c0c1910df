"""The MLflow connector's pure parts: the assessments a reviewer record becomes, MLflow's
span attributes given their OpenInference names, the cursor held before running traces,
and one line with exit 7 when MLflow cannot be reached. The round trip against a real
MLflow server is ``tests/integration/test_mlflow_connector.py``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.connectors.mlflow import (
    EXPECTATION,
    ITEM_KEY,
    MlflowClient,
    MlflowPull,
    assessments_for,
    otlp_span,
)
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.store import Store

TRACE = Trace(trace_id="tr-402b3bc1e3ee840c13ece3dee25a2063", output="Lyon.")


def _record(**kw: object) -> AnnotationRecord:
    fields: dict[str, object] = {
        "record_key": "ls:1:2:3", "trace_id": TRACE.trace_id, "schema_id": "default",
        "schema_version": 1, "source": Source.reviewer, "label": "fail", "score": 0.2,
        "explanation": "Wrong city.", "corrected_output": "Paris.",
        "author": "rev@example.com", "ls_task_id": 2, "ls_project_id": 1, **kw}
    return AnnotationRecord.model_validate(fields)


def test_a_record_becomes_a_human_feedback_and_an_expectation() -> None:
    feedback, expectation = assessments_for(_record(), TRACE)
    assert feedback.item_key == "ls:1:2:3"
    body = feedback.body
    assert body["assessment_name"] == "default" and body["trace_id"] == TRACE.trace_id
    assert body["source"] == {"source_type": "HUMAN", "source_id": "rev@example.com"}
    assert body["feedback"] == {"value": "fail"} and body["rationale"] == "Wrong city."
    assert "span_id" not in body  # a trace-scoped record: a trace assessment
    meta = body["metadata"]
    assert all(isinstance(v, str) for v in meta.values())  # MLflow's map<string, string>
    assert meta["score"] == "0.2" and meta[ITEM_KEY] == "ls:1:2:3"
    assert meta["label_studio_task"] == "2" and meta["reviewer"] == "rev@example.com"
    assert "corrected_output" not in meta
    assert expectation.item_key == f"ls:1:2:3#{EXPECTATION}"
    assert expectation.body["assessment_name"] == "expected_response"
    assert expectation.body["expectation"] == {"value": "Paris."}
    assert "corrected_output" not in expectation.body["metadata"]


def test_value_falls_back_to_score_then_categories_and_span_scope_is_kept() -> None:
    [only_score] = assessments_for(_record(label=None, corrected_output=None), TRACE)
    assert only_score.body["feedback"] == {"value": 0.2}
    span = Scope(kind="span", span_id="2c2e808f2051af89")
    [cats] = assessments_for(_record(label=None, score=None, labels=["tone", "facts"],
                                     corrected_output=None, scope=span), TRACE)
    assert cats.body["feedback"] == {"value": ["tone", "facts"]}
    assert cats.body["span_id"] == "2c2e808f2051af89"
    assert assessments_for(_record(label=None, score=None, corrected_output=None),
                           TRACE) == []


def _value(attrs: list[dict[str, object]], key: str) -> object:
    return next(a["value"] for a in attrs if a["key"] == key)


def test_mlflow_span_attributes_get_openinference_names() -> None:
    inputs = {"kvlist_value": {"values": [{"key": "model",
                                           "value": {"string_value": "gpt-4o-mini"}}]}}
    span = {"trace_id": base64.b64encode(bytes(16 * [7])).decode(),
            "span_id": base64.b64encode(bytes(8 * [9])).decode(), "parent_span_id": "",
            "name": "Completions", "start_time_unix_nano": 1,
            "attributes": [
                {"key": "mlflow.spanType", "value": {"string_value": "\"CHAT_MODEL\""}},
                {"key": "mlflow.spanInputs", "value": inputs},
                {"key": "mlflow.spanOutputs", "value": {"string_value": "{}"}},
                {"key": "mlflow.llm.model", "value": {"string_value": "gpt-4o-mini"}},
                {"key": "logprobs"}]}
    out = otlp_span(span)
    attrs = out["attributes"]
    assert _value(attrs, "openinference.span.kind") == {"stringValue": "LLM"}
    assert _value(attrs, "input.value") == {"kvlistValue": {"values": [
        {"key": "model", "value": {"stringValue": "gpt-4o-mini"}}]}}
    assert _value(attrs, "output.value") == {"stringValue": "{}"}
    assert _value(attrs, "llm.model_name") == {"stringValue": "gpt-4o-mini"}
    assert "parentSpanId" not in out and out["spanId"] == span["span_id"]


def test_cursor_is_held_before_a_running_trace(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    client = MlflowClient("http://127.0.0.1:9")  # never called: only the pure steps run
    pull = MlflowPull(client, store, "exp", filter_string="tags.env = 'prod'")
    assert pull._filter() == "tags.env = 'prod'"
    for info in [
            {"trace_id": "tr-a", "request_time": "2026-05-01T12:00:00Z", "state": "OK"},
            {"trace_id": "tr-b", "request_time": "2026-05-01T12:01:00Z",
             "state": "IN_PROGRESS"},
            {"trace_id": "tr-c", "request_time": "2026-05-01T12:02:00Z", "state": "OK"}]:
        pull.take(info)
    assert pull.trace_ids == ["tr-a", "tr-c"] and pull.in_progress == 1
    assert pull.save_cursor(store) == "2026-05-01T12:01:00+00:00"
    later = MlflowPull(client, store, "exp", filter_string="tags.env = 'prod'")
    assert later.start == datetime(2026, 5, 1, 11, 56, tzinfo=UTC)  # 5 min overlap
    assert later._filter() == (f"trace.timestamp_ms >= {int(later.start.timestamp() * 1000)}"
                               " AND tags.env = 'prod'")
    # a trace MLflow serves without spans (yet) is kept aside with the reason, and the
    # cursor stays before it so that the next pull reads it again
    later.take({"trace_id": "tr-x", "request_time": "2026-05-01T11:58:00Z", "state": "OK"})
    later.take({"trace_id": "tr-y", "request_time": "2026-05-01T11:59:00Z", "state": "OK"})
    [[rejected]] = list(later._read("tr-x", {"trace_info": {}, "spans": []}, "1"))
    assert rejected.field == "spans" and "no spans" in rejected.reason
    assert later.save_cursor(store) == "2026-05-01T11:58:00+00:00"
    store.close()


def test_unreachable_mlflow_is_one_line_exit_7(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    result = CliRunner().invoke(main, ["push", "mlflow", "--experiment", "e",
                                       "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 7
    assert "MLflow at http://127.0.0.1:9 could not be reached" in result.output
    assert len(result.output.strip().splitlines()) == 1
