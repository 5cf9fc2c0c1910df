"""Agent steps (pure): the numbered steps the converter builds from a trace's spans, checked
against what the fixture producers sent (truth.json), and the sync's span records of the
steps a reviewer marks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.ingest.convert import ReviewOptions, agent_steps, trace_to_task
from ls_llmtrace.ingest.importers.detect import read_any
from ls_llmtrace.models import SpanKind, Trace
from ls_llmtrace.records.mapping import map_annotation
from ls_llmtrace.schema.model import AnnotationSchema, parse_schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AGENT_FIXTURES = ["openinference-agents", "openinference-langchain",
                  "openinference-llamaindex", "vercel-ai"]
OPTIONS = ReviewOptions()


def _traces(fixture: str) -> dict[str, Trace]:
    return {t.trace_id: t for t in read_any(FIXTURES / fixture / "trace.otlp.jsonl")
            if isinstance(t, Trace)}


def _truth(fixture: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / fixture / "truth.json").read_text())["traces"])


def _tool_round_trip(fixture: str) -> tuple[Trace, dict[str, Any]]:
    traces = _traces(fixture)
    [truth] = [t for t in _truth(fixture)
               if any(m.get("tool_calls") for m in t["messages"])][:1]
    return traces[truth["trace_id"]], truth


@pytest.mark.parametrize("fixture", AGENT_FIXTURES)
def test_a_tool_round_trip_is_three_steps_on_their_spans(fixture: str) -> None:
    trace, truth = _tool_round_trip(fixture)
    [call] = [c for m in truth["messages"] for c in m.get("tool_calls", [])]
    steps = agent_steps(trace, OPTIONS)
    assert [s["title"].split(": ", 1)[1].split(" (")[0] for s in steps] == [
        "model call", f"tool {call['name']}", "model call"]
    spans = {s.span_id: s for s in trace.spans}
    assert [spans[s["span_id"]].kind for s in steps] == [SpanKind.llm, SpanKind.tool,
                                                         SpanKind.llm]
    assert [s["title"][:7] for s in steps] == ["Step 1:", "Step 2:", "Step 3:"]
    asked, tool, answer = (s["text"] for s in steps)
    question = truth["messages"][0]["content"]
    assert f"user: {question}" in asked and f"called: {call['name']}" in asked
    arguments, returned = tool.split("\n\nreturned:\n")
    assert json.loads(arguments.split(" with:\n", 1)[1]) == call["arguments"]
    assert json.loads(returned) == json.loads(call["result"])
    assert answer.endswith("answered:\n" + truth["output"])  # whitespace kept
    # in time order: the tool ran between the two model calls
    times = [spans[s["span_id"]].start_time for s in steps]
    assert times == sorted(times)


def test_a_single_call_has_no_steps() -> None:
    traces = _traces("openinference-langchain")
    [single] = [t for t in _truth("openinference-langchain")
                if len(t["messages"]) == 1 and not t["error"]]
    trace = traces[single["trace_id"]]
    assert agent_steps(trace, OPTIONS) == []
    data = trace_to_task(trace, _schema(), OPTIONS)["data"]
    assert (data["steps"], data["steps_shown"]) == ([], [])


def test_a_retrieval_span_is_a_step_with_its_documents() -> None:
    [rag] = [t for t in _truth("openinference-llamaindex") if t.get("documents")]
    trace = _traces("openinference-llamaindex")[rag["trace_id"]]
    retrieval, call = agent_steps(trace, OPTIONS)
    assert retrieval["title"].startswith("Step 1: retrieval")
    for doc in rag["documents"]:
        assert doc in retrieval["text"]
    assert call["text"].endswith(rag["output"])
    assert {s.span_id: s.kind for s in trace.spans}[retrieval["span_id"]] == SpanKind.retrieval


def _schema(first_failing_step: bool = False, categories: bool = True) -> AnnotationSchema:
    cats = "\n    categories: [hallucination, ignored_tool_result]" if categories else ""
    return parse_schema(f"""\
id: agents
version: 1
owner: o@example.com
fields:
  - type: label
    values: [pass, fail]
    failing: [fail]{cats}
    first_failing_step: {str(first_failing_step).lower()}
  - type: explanation
""", "agents.yaml")


def _result(name: str, kind: str, value: dict[str, Any], rid: str) -> dict[str, Any]:
    return {"id": rid, "from_name": name, "to_name": name.replace("_labels", ""),
            "type": kind, "value": value}


def test_marked_steps_sync_as_span_records_with_their_span_ids() -> None:
    trace, _ = _tool_round_trip("openinference-agents")
    schema = _schema(first_failing_step=True)
    task = {**trace_to_task(trace, schema, OPTIONS), "id": 5}
    steps = task["data"]["steps"]
    assert task["data"]["steps_shown"] == [3]
    annotation = {"id": 7, "completed_by": 1, "result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        _result("step_labels_2", "choices", {"choices": ["ignored_tool_result"]}, "s2"),
        _result("step_labels_1", "choices", {"choices": ["hallucination",
                                                         "ignored_tool_result"]}, "s1"),
        {"from_name": "first_failing_step", "to_name": "answer", "type": "number",
         "value": {"number": 2}},
    ]}
    mapped = map_annotation(task, annotation, schema, 3)
    assert mapped.rejects == []
    record, *marks = mapped.records
    assert record.scope.kind == "trace" and record.label == "fail"
    assert record.metadata["first_failing_step"] == {"step": 2,
                                                     "span_id": steps[1]["span_id"]}
    assert [(m.scope.kind, m.scope.span_id, m.labels, m.metadata["step"]) for m in marks] == [
        ("span", steps[2]["span_id"], ["ignored_tool_result"], 3),
        ("span", steps[1]["span_id"], ["hallucination", "ignored_tool_result"], 2)]
    assert [m.record_key for m in marks] == ["ls:3:7:s2", "ls:3:7:s1"]
    assert all(m.trace_id == trace.trace_id and m.label is None for m in marks)


def test_unusable_step_marks_are_kept_aside_with_the_reason() -> None:
    trace, _ = _tool_round_trip("openinference-agents")
    schema = _schema(categories=False)  # no categories: steps are marked with "fail"
    task = {**trace_to_task(trace, schema, OPTIONS), "id": 5}
    annotation = {"id": 7, "result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["pass"]}},
        _result("step_labels_0", "choices", {"choices": ["fail"]}, "ok"),
        _result("step_labels_9", "choices", {"choices": ["fail"]}, "far"),
        _result("step_labels_1", "choices", {"choices": ["hallucination"]}, "unknown"),
        _result("step_labels_1", "textarea", {"text": ["x"]}, "kind"),
        {"from_name": "first_failing_step", "type": "number", "value": {"number": 1}},
    ]}
    mapped = map_annotation(task, annotation, schema, 3)
    assert [m.scope.span_id for m in mapped.records[1:]] == [task["data"]["steps"][0]["span_id"]]
    reasons = {r.raw.get("id", r.field): r.reason for r in mapped.rejects}
    assert reasons["far"] == "step 10 is not an agent step of this task (with a span id)"
    assert reasons["unknown"].startswith("step labels ['hallucination'] not among ['fail']")
    assert "of type 'textarea'" in reasons["kind"]
    assert "not in schema agents@v1" in reasons["first_failing_step"]  # not asked for
    with_option = _schema(first_failing_step=True, categories=False)
    out = map_annotation(task, {**annotation, "result": annotation["result"][:1] + [
        {"from_name": "first_failing_step", "type": "number", "value": {"number": 1}},
        {"from_name": "first_failing_step", "type": "number", "value": {"number": 4}}]},
        with_option, 3)
    assert [r.reason for r in out.rejects] == [
        "first failing step 4 is not a step number from 1 to 3",
        "first failing step 1 given with verdict 'pass', which is not failing in schema "
        "agents@v1"]
