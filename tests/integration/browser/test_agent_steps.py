"""An agent trace's numbered steps in Label Studio's real labeling UI (headless Chromium):
the judge's proposal marks the last step, the reviewer marks the tool step as failing and
gives the first failing step; the sync turns each mark into a span record on that step's
span, the judge's kept mark with origin ``prediction``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ls_llmtrace.ingest.importers.detect import read_any
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import SpanKind, Trace
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import parse_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[3]
SCHEMA = """\
id: agentui
version: 1
title: Agent review
owner: lead@example.com
fields:
  - type: label
    values: [pass, fail]
    failing: [fail]
    categories: [hallucination, ignored_tool_result]
    first_failing_step: true
  - type: explanation
rubric:
  ignored_tool_result:
    definition: A tool returned something the step contradicts or leaves out.
"""


def _main_text(driver: Any) -> str:
    return str(driver.execute_script(
        "const el = document.querySelector('.lsf-main-view'); return el ? el.innerText : ''"))


def _label(scope: Any, text: str) -> Any:
    [label] = [el for el in scope.find_elements(By.TAG_NAME, "label")
               if el.text.strip().split("[")[0] == text]
    return label


def test_a_marked_agent_step_syncs_as_a_span_record(
        browser: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, creds = labelstudio
    schema = parse_schema(SCHEMA, "agentui.v1.yaml")
    [trace] = [t for t in read_any(REPO / "tests" / "fixtures" / "openinference-agents"
                                   / "trace.otlp.jsonl") if isinstance(t, Trace)]
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    pid = import_traces(ls_client, store, [trace], queue="agent-steps",
                        schema=schema).project_id
    [(task_id, _)] = ls_client.task_trace_ids(pid)
    steps = ls_client.sdk.tasks.get(id=str(task_id)).data["steps"]
    tool_span, last_span = steps[1]["span_id"], steps[2]["span_id"]
    assert {s.span_id: s.kind for s in trace.spans}[tool_span] == SpanKind.tool
    ls_client.sdk.predictions.create(task=task_id, model_version="llm-v1@agentui@v1", score=0.7,
                                     result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "step_labels_2", "to_name": "step_2", "type": "choices",
         "value": {"choices": ["hallucination"]}}])

    browser.get(f"{server.url}/projects/{pid}/data?task={task_id}")
    WebDriverWait(browser, 90).until(lambda d: "Step 3: model call" in _main_text(d))
    text = _main_text(browser)
    assert text.index("Agent steps") < text.index("Step 1: model call") \
        < text.index("Step 2: tool get_weather") < text.index("Step 3: model call")
    assert '"city": "Paris"' in text  # the tool's arguments, as called
    boxes = browser.find_elements(By.CSS_SELECTOR, ".llmt-step")
    assert len(boxes) == 3
    browser.save_screenshot(str(tmp_path / "agent-steps.png"))

    # the judge's proposal: the last step marked
    proposed = boxes[2].find_element(By.NAME, "hallucination")
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".llmt-step")[2].find_element(
            By.NAME, "hallucination").is_selected())
    assert proposed is not None
    outside = [el for el in browser.find_elements(By.TAG_NAME, "label")
               if not el.find_elements(By.XPATH, "ancestor::*[contains(@class,'llmt-step')]")]
    browser.execute_script("arguments[0].click()", next(
        el for el in outside if el.text.strip().split("[")[0] == "fail"))
    boxes = browser.find_elements(By.CSS_SELECTOR, ".llmt-step")
    browser.execute_script("arguments[0].click()", _label(boxes[1], "ignored_tool_result"))
    outside = [el for el in browser.find_elements(By.TAG_NAME, "label")
               if not el.find_elements(By.XPATH, "ancestor::*[contains(@class,'llmt-step')]")]
    browser.execute_script("arguments[0].click()", next(  # the trace's category
        el for el in outside if el.text.strip().split("[")[0] == "ignored_tool_result"))
    explanation = browser.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
    explanation.click()
    explanation.send_keys("The tool step's result was misread.")
    number = WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)
                           ).until(lambda d: d.find_element(By.CSS_SELECTOR,
                                                            "input[type=number]"))
    number.send_keys("2")
    browser.save_screenshot(str(tmp_path / "agent-steps-marked.png"))
    [submit] = [b for b in browser.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == "Submit"]
    browser.execute_script("arguments[0].click()", submit)
    deadline = time.monotonic() + 30
    while not ls_client.sdk.tasks.get(id=str(task_id)).annotations:
        assert time.monotonic() < deadline, "the UI submitted no annotation"
        time.sleep(0.5)
    [annotation] = ls_client.sdk.tasks.get(id=str(task_id)).annotations
    by_control = {r["from_name"]: r for r in annotation["result"]}
    assert by_control["step_labels_1"]["to_name"] == "step_1"  # the Repeater's index

    [summary] = sync_all(ls_client, store, {(schema.id, schema.version): schema}, [pid])
    assert summary.rejected == 0
    records = [r for r in store.records(source="reviewer") if r.ls_project_id == pid]
    [verdict_record] = [r for r in records if r.scope.kind == "trace"]
    marks = {r.scope.span_id: r for r in records if r.scope.kind == "span"}
    assert verdict_record.label == "fail"
    assert verdict_record.metadata["first_failing_step"] == {"step": 2, "span_id": tool_span}
    assert sorted(marks) == sorted([tool_span, last_span])
    assert marks[tool_span].labels == ["ignored_tool_result"]
    assert marks[tool_span].origins == {"labels": "manual"}
    assert marks[last_span].labels == ["hallucination"]
    assert marks[last_span].origins == {"labels": "prediction"}  # the judge's, kept
    assert all(m.trace_id == trace.trace_id and m.author == creds.email
               for m in marks.values())
    store.close()
