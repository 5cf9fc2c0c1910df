"""An agent trace's numbered steps in Label Studio's real labeling UI (headless Chromium):
the reviewer marks the tool step as failing and gives the first failing step; the sync
turns the mark into a span record on that step's span."""

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
    tool_span = steps[1]["span_id"]
    assert {s.span_id: s.kind for s in trace.spans}[tool_span] == SpanKind.tool

    browser.get(f"{server.url}/projects/{pid}/data?task={task_id}")
    WebDriverWait(browser, 90).until(lambda d: "Step 3: model call" in _main_text(d))
    text = _main_text(browser)
    assert text.index("Agent steps") < text.index("Step 1: model call") \
        < text.index("Step 2: tool get_weather") < text.index("Step 3: model call")
    assert '"city": "Paris"' in text  # the tool's arguments, as called
    boxes = browser.find_elements(By.CSS_SELECTOR, ".llmt-step")
    assert len(boxes) == 3
    browser.save_screenshot(str(tmp_path / "agent-steps.png"))

    verdict = [el for el in browser.find_elements(By.NAME, "fail")
               if not el.find_elements(By.XPATH, "ancestor::*[contains(@class,'llmt-step')]")]
    browser.execute_script("arguments[0].click()", verdict[0])
    browser.execute_script("arguments[0].click()", _label(boxes[1], "ignored_tool_result"))
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
    [step_record] = [r for r in records if r.scope.kind == "span"]
    assert verdict_record.label == "fail"
    assert verdict_record.metadata["first_failing_step"] == {"step": 2, "span_id": tool_span}
    assert (step_record.scope.span_id, step_record.labels) == (tool_span,
                                                               ["ignored_tool_result"])
    assert step_record.trace_id == trace.trace_id and step_record.author == creds.email
    store.close()
