"""Every generated label config renders in Label Studio's own labeling UI (headless
Chromium), shows the whole trace and the controls, and shows HTML in traces as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import Document, Message, ToolCall, Trace
from ls_llmtrace.records.mapping import map_annotation
from ls_llmtrace.schema.labelconfig import build_label_config, parse_controls
from ls_llmtrace.schema.model import load_schema_dir
from ls_llmtrace.store import Store

LABEL_CONFIGS = Path(__file__).resolve().parents[3] / "label_configs"
HOSTILE = ("<script>window.__pwned=1;document.title='pwned'</script>"
           "<img src=x onerror=\"window.__pwned=2\"><b>bold?</b>")


def _trace(version: str) -> Trace:
    return Trace(
        trace_id=f"browser-{version}",
        system_prompt="You answer weather questions.",
        messages=[
            Message(role="user", content="What is the weather in Paris? " + HOSTILE),
            Message(role="assistant", tool_calls=[
                ToolCall(id="call-7", name="get_weather", arguments={"city": "Paris"})]),
            Message(role="tool", content="rainy, 57F", tool_call_id="call-7"),
        ],
        documents=[Document(id="doc-3", content="Paris forecast: rain all day. " + HOSTILE)],
        output="It is sunny in Paris. " + HOSTILE,
    )


def _shown(driver: Any, name: str) -> bool:
    """Is the choice input ``name`` shown? (antd hides the input itself; its label shows.)"""
    element = driver.find_element(By.NAME, name)
    return bool(element.find_element(By.XPATH, "ancestor::label[1]").is_displayed())


def _text(driver: Any) -> str:
    return str(driver.execute_script("return document.body.innerText"))


WORD_OFFSET = """
const [box, word] = arguments;
const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const at = node.data.indexOf(word);
  if (at < 0) continue;
  const range = document.createRange();
  range.setStart(node, at); range.setEnd(node, at + word.length);
  const r = range.getBoundingClientRect(), b = box.getBoundingClientRect();
  return [Math.round(r.left + r.width / 2 - (b.left + b.width / 2)),
          Math.round(r.top + r.height / 2 - (b.top + b.height / 2))];
}
throw new Error("word not found: " + word);
"""

SCHEMAS = sorted(load_schema_dir(LABEL_CONFIGS).values(), key=lambda s: s.version_id)


@pytest.mark.parametrize("schema", SCHEMAS, ids=[s.version_id for s in SCHEMAS])
def test_config_renders_in_the_labeling_ui(
        schema: Any, browser: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, _ = labelstudio
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    version = f"{schema.id}-v{schema.version}"
    project_id = import_traces(ls_client, store, [_trace(version)],
                               queue=f"browser-{version}", schema=schema).project_id
    store.close()
    [(task_id, _)] = list(ls_client.task_trace_ids(project_id))
    browser.get(f"{server.url}/projects/{project_id}/data?task={task_id}")
    # the labeling UI is rendered once the answer (last object in the config) is on the page
    WebDriverWait(browser, 60).until(lambda d: "It is sunny in Paris." in _text(d)
                                     and "Verdict" in _text(d))
    browser.save_screenshot(str(tmp_path / f"{version}.png"))
    text = _text(browser)

    # the whole trace: conversation with the tool call inline and its result, document,
    # answer, metadata
    for expected in (f"{schema.title} (schema {schema.version_id})", "browser-" + version,
                     "You answer weather questions.", "What is the weather in Paris?",
                     '\u2192 get_weather [call-7]\n{"city": "Paris"}',
                     "tool (get_weather)", "rainy, 57F", "document 1 (doc-3)",
                     "It is sunny in Paris."):
        assert expected in text, expected
    # the document is collapsed until opened
    panel = browser.find_element(By.CSS_SELECTOR, ".ant-collapse-header")
    browser.execute_script("arguments[0].click()", panel)
    WebDriverWait(browser, 10).until(lambda d: "Paris forecast: rain all day." in _text(d))
    text = _text(browser)
    # hostile HTML is shown as text, four times (message, document, answer, data column)
    assert text.count("<script>window.__pwned=1;document.title='pwned'</script>") >= 3
    assert browser.execute_script("return window.__pwned") is None
    assert browser.title != "pwned"
    assert browser.execute_script(
        "return document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert browser.execute_script(
        "return [...document.querySelectorAll('b')].filter(b => b.textContent === 'bold?')"
        ".length") == 0

    # every control of the config is on the page
    controls = parse_controls(build_label_config(schema))
    assert _shown(browser, "pass") and _shown(browser, "fail")
    textareas = browser.find_elements(By.CSS_SELECTOR, "textarea")
    assert {t.get_attribute("name") for t in textareas} >= {"explanation", "corrected_output"}
    if controls["score"].tag == "Rating":
        stars = browser.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star")
        assert len(stars) == schema.score_field.max_rating
    else:
        assert browser.find_elements(By.CSS_SELECTOR, "input[type=number]")
    palettes = [controls[n] for n in ("answer_spans", "message_spans") if n in controls]
    chips = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".lsf-label__text")]
    for palette in palettes:  # both palettes offer the same span labels
        for label in palette.values:
            assert chips.count(label) == len(palettes), (label, chips)
    if not palettes:
        assert chips == []
    if "categories" in controls:
        # failure categories appear only once a failing verdict is chosen
        first = controls["categories"].values[0]
        assert not _shown(browser, first)
        browser.execute_script("arguments[0].click()", browser.find_element(By.NAME, "fail"))
        WebDriverWait(browser, 10).until(lambda d: _shown(d, first))
        for value in controls["categories"].values:
            assert _shown(browser, value)
        browser.execute_script("arguments[0].click()", browser.find_element(By.NAME, first))
        browser.save_screenshot(str(tmp_path / f"{version}-fail.png"))
    assert (tmp_path / f"{version}.png").stat().st_size > 10_000

    # a reviewer's submission from the real UI maps onto a record with nothing kept aside
    if "categories" not in controls:
        browser.execute_script("arguments[0].click()", browser.find_element(By.NAME, "fail"))
    if controls["score"].tag == "Rating":
        stars = browser.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star > div")
        browser.execute_script("arguments[0].click()", stars[2])
    if "answer_spans" in controls:  # mark a word of the answer with a span label
        chips = [e for e in browser.find_elements(By.CSS_SELECTOR, ".lsf-label")
                 if e.text.startswith("wrong_fact")]
        browser.execute_script("arguments[0].click()", chips[-1])  # the answer's palette
        answer_box = browser.find_elements(By.CSS_SELECTOR, ".lsf-htx-richtext")[-1]
        # where the word "sunny" is, relative to the box's centre (selenium's origin)
        dx, dy = browser.execute_script(WORD_OFFSET, answer_box, "sunny")
        ActionChains(browser).move_to_element_with_offset(answer_box, dx, dy).double_click(
        ).perform()
        WebDriverWait(browser, 10).until(  # the region is drawn over the word
            lambda d: d.find_elements(By.CSS_SELECTOR, ".htx-highlight"))
    # a failing verdict needs the reviewer's explanation (tests/integration/browser/
    # test_screen.py shows the refusals)
    box = browser.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
    box.click()
    box.send_keys("The tool said rainy.")
    submit = browser.find_element(By.XPATH, "//button[normalize-space()='Submit']")
    browser.execute_script("arguments[0].click()", submit)
    WebDriverWait(browser, 20).until(
        lambda d: ls_client.sdk.tasks.get(id=task_id).total_annotations == 1)
    task = ls_client.sdk.tasks.get(id=task_id).model_dump(mode="json")
    [annotation] = ls_client.sdk.annotations.list(id=task_id)
    mapped = map_annotation(task, annotation.model_dump(mode="json"), schema, project_id)
    assert mapped.rejects == [], [r.reason for r in mapped.rejects]
    record = mapped.records[0]
    assert record.label == "fail" and record.explanation == "The tool said rainy."
    if "answer_spans" in controls:
        [span] = mapped.records[1:]
        answer = task["data"]["answer"]
        assert span.scope.target == "answer" and span.labels == ["wrong_fact"]
        assert span.scope.start is not None and span.scope.end is not None
        assert answer[span.scope.start:span.scope.end] == span.scope.text != ""
        assert span.record_key.startswith(f"ls:{project_id}:{annotation.id}:")
    else:
        assert len(mapped.records) == 1
    if "categories" in controls:
        assert record.labels == [controls["categories"].values[0]]
    if controls["score"].tag == "Rating":
        assert record.score == 0.5  # three of five stars

    # the rubric is in the project's instructions, escaped
    button = browser.find_element(By.XPATH, "//button[normalize-space()='Instructions']")
    browser.execute_script("arguments[0].click()", button)
    fail_rubric = " ".join(schema.rubric["fail"].definition.split())
    WebDriverWait(browser, 10).until(lambda d: fail_rubric in " ".join(_text(d).split()))
    assert f"Owner (settles disagreements): {schema.owner}" in _text(browser)
    browser.save_screenshot(str(tmp_path / f"{version}-instructions.png"))
