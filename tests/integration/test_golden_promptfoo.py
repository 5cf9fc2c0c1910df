"""A golden set's promptfoo export, run by the real promptfoo CLI (tools/promptfoo, pinned,
installed by `make setup`) against the local OpenAI-compatible fake server: each case is a
test, a candidate answering the reference passes, one repeating a quoted bad span fails."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.support.fake_llm_server import FakeLLM

from ls_llmtrace.evals.golden import BuildOptions, GoldenSet, build_golden, write_golden
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
PROMPTFOO = REPO / "tools" / "promptfoo" / "node_modules" / ".bin" / "promptfoo"


def run_promptfoo(config: Path, out: Path, home: Path) -> tuple[int, dict]:
    if not PROMPTFOO.exists():
        pytest.fail(f"promptfoo is not installed at {PROMPTFOO}: run `make setup` first")
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_DISABLE_SHARING": "1", "PROMPTFOO_CONFIG_DIR": str(home / "promptfoo"),
           "OPENAI_API_KEY": "sk-test", "NO_COLOR": "1"}
    done = subprocess.run([str(PROMPTFOO), "eval", "-c", str(config), "--no-cache",
                           "-o", str(out)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=config.parent)
    assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


def _trace(i: int, kind: str) -> Trace:
    return Trace.model_validate({
        "trace_id": f"pf-{kind}-{i}", "system_prompt": "You answer weather questions.",
        "messages": [
            {"role": "user", "content": f"[[case:pf-{kind}-{i}]] Weather in city number {i} "
             f"({kind}) for the weekend trip?"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"id": f"c{i}", "name": "weather", "arguments": {"city": i}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "rainy, 57F"}],
        "documents": [{"id": "d1", "content": "Umbrellas are sold at the front desk."}],
        "output": f"It is sunny and warm in city {i}, leave the umbrella at home.",
        "metadata": {"model_version": "m-1", "product_area": "weather"}})


def _golden(tmp_path: Path) -> GoldenSet:
    schema = load_schema(REPO / "label_configs" / "default.v2.yaml")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    failures = [_trace(i, "fail") for i in range(4)]
    passing = [_trace(i, "pass") for i in range(8)]
    store.upsert_traces(failures + passing)
    with store.transaction() as conn:
        for n, trace in enumerate(failures + passing):
            failing = trace in failures
            key = f"ls:1:{n + 1}"
            Store.upsert_record(conn, AnnotationRecord(
                record_key=key, trace_id=trace.trace_id, schema_id="default",
                schema_version=2, source=Source.reviewer, label="fail" if failing else "pass",
                labels=["ignored_tool_result"] if failing else [],
                corrected_output=f"It is rainy and 57F in city {n}: take an umbrella."
                if failing else None, ls_project_id=1, author="rev@example.com"))
            if failing:
                text = "sunny and warm"
                Store.upsert_record(conn, AnnotationRecord(
                    record_key=f"{key}:s", trace_id=trace.trace_id, schema_id="default",
                    schema_version=2, source=Source.reviewer, labels=["wrong_fact"],
                    scope=Scope(kind="text_range", target="answer", text=text,
                                start=trace.output.index(text),
                                end=trace.output.index(text) + len(text)),
                    ls_project_id=1, author="rev@example.com"))
    golden = build_golden(store, schema, project_id=1, options=BuildOptions(control_share=0.5))
    store.close()
    return golden


def test_promptfoo_runs_the_export(tmp_path: Path) -> None:
    golden = _golden(tmp_path)
    assert golden.manifest.counts["failures"] == 4 and golden.manifest.counts["controls"] == 2
    cases = {c.case_id: c for c in golden.cases}

    with FakeLLM() as llm:
        expected: dict[str, bool] = {}
        for case in golden.cases:
            if case.case_id == "pf-fail-0":  # the old bug again: the bad output
                llm.script(case.case_id, {"content": case.output})
                expected[case.case_id] = False
            elif case.case_id == "pf-fail-1":  # a different, unrelated answer
                llm.script(case.case_id, {"content": "I cannot help with that request."})
                expected[case.case_id] = False
            else:
                llm.script(case.case_id, {"content": case.reference})
                expected[case.case_id] = True
        folder = write_golden(golden, tmp_path / "golden", "openai:chat:fake-model",
                              llm.base_url)
        config = folder / "promptfooconfig.yaml"
        assert len(yaml.safe_load(config.read_text())["tests"]) == len(golden.cases)
        code, out = run_promptfoo(config, tmp_path / "out.json", tmp_path)
        seen = llm.requests_seen()

    results = out["results"]["results"]
    assert len(results) == len(golden.cases) == 6
    got = {r["vars"]["case_id"]: r["success"] for r in results}
    assert got == expected
    assert out["results"]["stats"]["successes"] == 4
    assert out["results"]["stats"]["failures"] == 2
    assert code == 100  # promptfoo's exit code when a test fails
    reasons = {r["vars"]["case_id"]: r["gradingResult"]["reason"] for r in results}
    assert "not contain" in reasons["pf-fail-0"]
    # the candidate saw the case's input as a chat: system (with the documents), user,
    # the assistant's tool call and the tool result
    body = next(s["body"] for s in seen if s["marker"] == "pf-fail-2")
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert "Umbrellas are sold" in body["messages"][0]["content"]
    assert body["messages"][3]["content"] == "rainy, 57F"
    assert body["model"] == "fake-model"
    assert cases["pf-fail-2"].spans[0].text == "sunny and warm"


def test_promptfoo_llm_rubric_uses_the_grader_with_the_rubric(tmp_path: Path) -> None:
    golden = _golden(tmp_path)
    with FakeLLM() as llm:
        llm.set_default(json.dumps({"pass": True, "score": 1.0, "reason": "meets the rubric"}))
        llm.script("grade-bad", {"content": json.dumps(
            {"pass": False, "score": 0.0, "reason": "ignores the weather tool again"})})
        for case in golden.cases:
            tail = " [[case:grade-bad]]" if case.case_id == "pf-fail-3" else ""
            llm.script(case.case_id, {"content": (case.reference or "") + tail})
        folder = write_golden(golden, tmp_path / "golden", "openai:chat:fake-model",
                              llm.base_url, promptfoo_grader="openai:chat:fake-grader")
        code, out = run_promptfoo(folder / "promptfooconfig.yaml", tmp_path / "out.json",
                                  tmp_path)
        seen = llm.requests_seen()
    results = {r["vars"]["case_id"]: r for r in out["results"]["results"]}
    assert {k: r["success"] for k, r in results.items()} == \
        {c.case_id: c.case_id != "pf-fail-3" for c in golden.cases}
    assert "ignores the weather tool again" in results["pf-fail-3"]["gradingResult"]["reason"]
    assert code == 100
    graded = [s["body"] for s in seen if s["body"]["model"] == "fake-grader"]
    assert len(graded) == len(golden.cases)
    definition = golden.cases[0].rubric["ignored_tool_result"]
    assert any(definition in json.dumps(body) for body in graded)
