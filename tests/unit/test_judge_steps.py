"""The LLM judge proposes failing agent steps: it sees the numbered steps, answers which
went wrong, and its prediction marks those steps' controls (local OpenAI-compatible server
process, real HTTP, through the backend's /predict)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_llm_server import FakeLLM

from ls_llmtrace.errors import JudgeReplyError
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.ingest.importers.detect import read_any
from ls_llmtrace.judging.backend import create_app
from ls_llmtrace.judging.judges.llm import parse_reply
from ls_llmtrace.labelstudio.results import parse_config
from ls_llmtrace.models import Trace
from ls_llmtrace.records.mapping import map_annotation
from ls_llmtrace.schema.labelconfig import build_label_config
from ls_llmtrace.schema.model import parse_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA = """\
id: agentjudge
version: 1
owner: o@example.com
fields:
  - type: label
    values: [pass, fail]
    failing: [fail]
    categories: [hallucination, ignored_tool_result]
  - type: score
  - type: explanation
"""
REPLY = {"verdict": "fail", "score": 0.2, "confidence": 0.8,
         "explanation": "The tool step returned Celsius; the answer is fine but step 2 is off.",
         "categories": ["ignored_tool_result"], "spans": [],
         "steps": [{"step": 2, "labels": ["ignored_tool_result"]},
                   {"step": 9, "labels": ["hallucination"]}]}


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(api_key="k") as server:
        yield server


def _task() -> dict[str, Any]:
    [trace] = [t for t in read_any(REPO / "tests/fixtures/openinference-agents/trace.otlp.jsonl")
               if isinstance(t, Trace)]
    trace = trace.model_copy(update={"output": trace.output + " [[case:steps]]"})
    return {"id": 1, **trace_to_task(trace, parse_schema(SCHEMA), ReviewOptions())}


def test_the_judge_proposes_failing_steps(llm: FakeLLM, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"LS_LLMTRACE_HOME": str(tmp_path), "LS_LLMTRACE_LLM_BASE_URL":
                       llm.base_url, "LS_LLMTRACE_LLM_API_KEY": "k",
                       "LS_LLMTRACE_LLM_MODEL": "fake-judge",
                       "LS_LLMTRACE_SCHEMA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    for name in ("LS_LLMTRACE_JUDGE", "LS_LLMTRACE_JUDGE_CACHE", "LS_LLMTRACE_JUDGE_GOLDEN"):
        monkeypatch.delenv(name, raising=False)
    llm.reset()
    llm.script("steps", {"content": json.dumps(REPLY)})
    schema = parse_schema(SCHEMA)
    config = build_label_config(schema)
    client = create_app().test_client()
    task = _task()
    response = client.post("/predict", json={"tasks": [task], "label_config": config})
    assert response.status_code == 200
    [prediction] = response.get_json()["results"]
    by_name = {r["from_name"]: r for r in prediction["result"]}
    # step 2 (the tool call) is marked; step 9 does not exist and is left out
    assert by_name["step_labels_1"]["value"] == {"choices": ["ignored_tool_result"]}
    assert by_name["step_labels_1"]["to_name"] == "step_1"
    assert not any(n.startswith("step_labels_") and n != "step_labels_1" for n in by_name)
    # the judge was shown the steps and asked for them
    messages = llm.requests_seen()[-1]["body"]["messages"]
    assert '"steps": when the trace has "steps"' in messages[0]["content"]
    assert "Step 2: tool get_weather" in messages[-1]["content"]
    # a reviewer who keeps the judge's mark: a span record, origin prediction
    task["predictions"] = [{"id": 4, "model_version": prediction["model_version"],
                            "result": prediction["result"]}]
    annotation = {"id": 2, "parent_prediction": 4, "result": prediction["result"]}
    mapped = map_annotation(task, annotation, schema, 3)
    [mark] = [r for r in mapped.records if r.scope.kind == "span"]
    assert mark.scope.span_id == task["data"]["steps"][1]["span_id"]
    assert mark.origins == {"labels": "prediction"}


def test_step_labels_outside_the_config_break_the_reply() -> None:
    spec = parse_config(build_label_config(parse_schema(SCHEMA)))
    assert spec.step_values == ("hallucination", "ignored_tool_result")
    bad = {**REPLY, "steps": [{"step": 1, "labels": ["made_up"]}]}
    with pytest.raises(JudgeReplyError, match="step labels"):
        parse_reply(json.dumps(bad), spec)
    assert [s.step for s in parse_reply(json.dumps(REPLY), spec).steps] == [2, 9]
