"""What Label Studio's labeling UI (headless Chromium) writes when a reviewer works from
the judge's prediction, and what the sync keeps of it: the UI opens the task pre-filled
with the prediction, marks each submitted result ``prediction`` (kept) or
``prediction-changed`` (edited) and sets the annotation's ``parent_prediction``. (An API
client writes no origin at all: tests/integration/test_adjudication.py covers that path.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.judging.judges import Verdict
from ls_llmtrace.judging.predictions import to_results
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.results import parse_config
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import Trace
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[3]
JUDGE_VERSION = "llm-v3@default@v1"


def _judge_result(config: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """What the backend proposes (judging/predictions.py): the judge's reason goes into
    its own read-only control, not the reviewer's explanation box."""
    verdict = Verdict(label="fail", score=0.2, explanation="the judge's reason",
                      confidence=0.6)
    return to_results(parse_config(config), verdict, data, JUDGE_VERSION)


def _submit(driver: Any) -> None:
    [button] = [b for b in driver.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == "Submit"]
    driver.execute_script("arguments[0].click()", button)


def test_ui_marks_kept_and_changed_results(
        browser: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, creds = labelstudio
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    traces = [Trace(trace_id=f"ui-origin-{i}", output="The answer.") for i in range(2)]
    pid = import_traces(ls_client, store, traces, queue="ui-origin", schema=schema).project_id
    task = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}
    config = ls_client.project(pid).label_config or ""
    prediction = {trace: int(ls_client.sdk.predictions.create(
        task=tid, result=_judge_result(config, ls_client.sdk.tasks.get(id=tid).data),
        model_version=JUDGE_VERSION, score=0.6).id) for trace, tid in task.items()}

    for trace, change in (("ui-origin-0", True), ("ui-origin-1", False)):
        browser.get(f"{server.url}/projects/{pid}/data?task={task[trace]}")
        WebDriverWait(browser, 90).until(lambda d: d.find_elements(By.NAME, "fail"))
        # the UI opens on the judge's proposal
        WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.NAME, "fail").is_selected())
        # the judge's words are shown as the judge's; the reviewer's own box is empty
        judge_box = browser.find_element(By.CSS_SELECTOR, ".llmt-judge")
        assert f"Judge {JUDGE_VERSION}:" in judge_box.text
        assert "the judge's reason" in judge_box.text
        box = browser.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
        assert box.get_attribute("value") == ""
        if change:
            browser.execute_script("arguments[0].click()", browser.find_element(By.NAME, "pass"))
            WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)
                          ).until(lambda d: d.find_element(By.NAME, "pass").is_selected())
        else:  # agreeing with the failing verdict needs the reviewer's own explanation
            box.click()
            box.send_keys("my own reason")
        _submit(browser)
        deadline = time.monotonic() + 30
        while not ls_client.sdk.tasks.get(id=str(task[trace])).annotations:
            assert time.monotonic() < deadline, "the UI submitted no annotation"
            time.sleep(0.5)

    changed, kept = (ls_client.sdk.tasks.get(id=str(task[t])).annotations[0]
                     for t in ("ui-origin-0", "ui-origin-1"))
    # what the UI wrote
    assert changed["parent_prediction"] == prediction["ui-origin-0"]
    assert {r["from_name"]: r.get("origin") for r in changed["result"]} == {
        "verdict": "prediction-changed", "score": "prediction",
        "judge_explanation": "prediction"}
    assert {r["from_name"]: r.get("origin") for r in kept["result"]} == {
        "verdict": "prediction", "score": "prediction", "judge_explanation": "prediction",
        "explanation": "manual"}

    [summary] = sync_all(ls_client, store, {(schema.id, schema.version): schema}, [pid])
    assert summary.rejected == 0
    records = {r.trace_id: r for r in store.records(source="reviewer")}
    assert records["ui-origin-0"].label == "pass"
    assert records["ui-origin-0"].origins == {"label": "prediction-changed",
                                              "score": "prediction"}
    assert records["ui-origin-1"].origins == {"label": "prediction", "score": "prediction",
                                              "explanation": "manual"}
    # the judge's words are never the reviewer's: none on the pass, the reviewer's own
    # on the kept failure
    assert records["ui-origin-0"].explanation is None
    assert records["ui-origin-1"].explanation == "my own reason"
    for record in records.values():
        assert record.author == creds.email
        assert record.prediction is not None
        assert (record.prediction.model_version, record.prediction.judge) == (
            JUDGE_VERSION, "llm")
    store.close()
