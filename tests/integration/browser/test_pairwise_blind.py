"""A blind pairwise task in Label Studio's real labeling UI (headless Chromium): no model
or prompt name on screen, the sides swapped for this pair, and the reviewer's choice of
the left answer synced to the trace that was shown on the left (the swap undone)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ls_llmtrace.ingest.pairwise import CHOICES, pair_key, swapped
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.ingest.rules import parse_rules
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import Trace
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[3]


def _trace(trace_id: str, answer: str, version: str) -> Trace:
    return Trace.model_validate({
        "trace_id": trace_id, "system_prompt": "Answer in one line.",
        "messages": [{"role": "user", "content": "Which city is the capital of Australia?"}],
        "output": answer, "metadata": {"model_version": version, "prompt_name": "geo-v7",
                                       "model": "gpt-secret-model"}})


def _text(driver: Any, where: str = "body") -> str:
    return str(driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.innerText : ''",
        where))


def test_a_left_choice_on_a_swapped_pair_syncs_to_the_trace_shown_left(
        browser: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, creds = labelstudio
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    # a pair whose second trace (by id) goes on the left
    i = next(i for i in range(100) if swapped(pair_key(f"blind-a{i}", f"blind-b{i}")))
    first = _trace(f"blind-a{i}", "Sydney is the capital.", "model-old-17")
    second = _trace(f"blind-b{i}", "Canberra is the capital.", "model-new-18")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    rules = parse_rules("queues:\n  - name: blind\n    pairwise: {compare: model_version}\n")
    pid = import_traces(ls_client, store, [first, second], rules=rules,
                        schema=schema).project_ids["blind"]
    [(task_id, key)] = ls_client.task_trace_ids(pid)
    assert key == pair_key(first.trace_id, second.trace_id)

    browser.get(f"{server.url}/projects/{pid}/data?task={task_id}")
    WebDriverWait(browser, 90).until(  # the labeling screen is drawn
        lambda d: CHOICES["both_bad"] in _text(d, ".lsf-main-view")
        and "Canberra is the capital." in _text(d, ".lsf-main-view"))
    browser.save_screenshot(str(tmp_path / "pairwise-blind.png"))
    text = _text(browser, ".lsf-main-view")  # the labeling screen, not the task list
    for secret in ("model-old-17", "model-new-18", "geo-v7", "gpt-secret-model",
                   first.trace_id, second.trace_id, "model_version"):
        assert secret not in text, secret
    for shown in CHOICES.values():
        assert shown in text
    # the swap: the second trace's answer is answer A, on the left
    assert text.index("Answer A (left)") < text.index("Canberra is the capital.") \
        < text.index("Answer B (right)") < text.index("Sydney is the capital.")
    left, right = (browser.execute_script(
        "return [...document.querySelectorAll('.pair-answer')][arguments[0]]"
        ".getBoundingClientRect().left", n) for n in (0, 1))
    assert left < right  # side by side

    [label] = [el for el in browser.find_elements(By.TAG_NAME, "label")
               if el.text.strip().startswith(CHOICES["left"])]  # then its hotkey
    browser.execute_script("arguments[0].click()", label)
    reason = browser.find_element(By.CSS_SELECTOR, "textarea, input[name=preference_reason]")
    reason.send_keys("names the right city")
    [add] = [b for b in browser.find_elements(By.TAG_NAME, "button")
             if b.text.strip() == "Add"] or [None]
    if add is not None:
        browser.execute_script("arguments[0].click()", add)
    browser.save_screenshot(str(tmp_path / "pairwise-chosen.png"))
    [submit] = [b for b in browser.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == "Submit"]
    browser.execute_script("arguments[0].click()", submit)
    deadline = time.monotonic() + 30
    while not ls_client.sdk.tasks.get(id=str(task_id)).annotations:
        assert time.monotonic() < deadline, "the UI submitted no annotation"
        time.sleep(0.5)
    [annotation] = ls_client.sdk.tasks.get(id=str(task_id)).annotations
    by_control = {r["from_name"]: r["value"] for r in annotation["result"]}
    assert by_control["preference"] == {"choices": ["left"]}  # the alias, not the text

    [summary] = sync_all(ls_client, store, {(schema.id, schema.version): schema}, [pid])
    assert summary.rejected == 0
    [record] = [r for r in store.records(source="reviewer") if r.ls_project_id == pid]
    assert (record.trace_id, record.label) == (second.trace_id, "preferred")
    assert record.metadata["preferred_model_version"] == "model-new-18"
    assert record.metadata["other_trace_id"] == first.trace_id
    assert record.explanation == "names the right city"
    assert record.author == creds.email
    store.close()
