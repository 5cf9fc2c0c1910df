"""The review screen in Label Studio's own labeling UI (headless Chromium at 1440x900):
text shown as written (indentation, code in monospace), the verdict form beside the trace
and in view without scrolling on a long agent trace, the rubric enforced by the form, and
the judge's explanation kept as the judge's. Screenshots are saved in each test's
tmp_path; the scroll and click figures are written to ``screen-figures.json`` there."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.support.screen_traces import CODE_ANSWER, code_answer_trace, long_agent_trace

from ls_llmtrace.ingest.importers.native import read_native
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
V2 = load_schema(REPO / "label_configs" / "default.v2.yaml")
JUDGE_VERSION = "llm-v3@default@v2"
WIDTH, HEIGHT = 1440, 900


@pytest.fixture
def screen(browser: Any) -> Iterator[Any]:
    """The session's browser with a 1440x900 viewport, for one test."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield browser
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _import(ls_client: LabelStudioClient, tmp_path: Path, traces: list[Trace],
            queue: str) -> tuple[int, dict[str, int], Store]:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    project_id = import_traces(ls_client, store, traces, queue=queue, schema=V2).project_id
    tasks = {trace: task for task, trace in ls_client.task_trace_ids(project_id)}
    return project_id, tasks, store


def _open(driver: Any, server: ManagedLabelStudio, project_id: int,
          tasks: dict[str, int], trace_id: str) -> None:
    """Open the task of ``trace_id`` in the Data Manager's labeling view; return once it
    shows that trace (its metadata) and its answer (the last object) is drawn."""
    driver.get(f"{server.url}/projects/{project_id}/data?task={tasks[trace_id]}")
    WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".llmt-form")
                                    and d.find_elements(By.NAME, "fail"))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "const m = document.querySelector('.llmt-meta .lsf-richtext__container');"
        "const a = document.querySelector('.llmt-answer .lsf-richtext__container');"
        "return m && a && a.innerText.length > 0"
        " && m.innerText.split('\\n')[0].endsWith(' ' + arguments[0])", trace_id))
    time.sleep(0.5)  # the layout settles (fonts, the form column)


def _rect(driver: Any, element: Any) -> dict[str, float]:
    return dict(driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,"
        " height: innerHeight, width: innerWidth}", element))


def _label_of(driver: Any, name: str) -> Any:
    return driver.find_element(By.NAME, name).find_element(By.XPATH, "ancestor::label[1]")


def _scroll_to_see(driver: Any, element: Any) -> float:
    """How far the reviewer scrolls to see ``element`` whole (0 when it is in view): the
    view ends at Label Studio's bottom bar (the Submit button), which overlays the page."""
    r = _rect(driver, element)
    bar = driver.find_elements(By.CSS_SELECTOR, ".lsf-bottombar")
    bottom = min(r["height"], _rect(driver, bar[0])["top"]) if bar else r["height"]
    return max(0.0, r["bottom"] - bottom) + max(0.0, -r["top"])


def _settle(driver: Any, element: Any, timeout: float = 10.0) -> None:
    """Wait until ``element`` stops moving or growing (animations, smooth scrolling):
    the same rectangle on three reads 100 ms apart."""
    seen: list[dict[str, float]] = []

    def still(d: Any) -> bool:
        seen.append(_rect(d, element))
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(still)


def _click(driver: Any, element: Any) -> None:
    driver.execute_script("arguments[0].click()", element)


def _submit(driver: Any) -> None:
    _click(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Submit']"))


def _warning(driver: Any) -> str:
    """The text of the warning Label Studio shows on a refused submission ('' if none);
    closes it."""
    try:
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR,
                                                                  ".ant-modal-content"))
    except TimeoutException:
        return ""
    modal = driver.find_element(By.CSS_SELECTOR, ".ant-modal-content")
    text = str(modal.get_attribute("textContent"))  # (.text is empty while it fades in)
    ok = [b for b in modal.find_elements(By.TAG_NAME, "button")
          if (b.get_attribute("textContent") or "").strip() == "OK"]
    if ok:
        _click(driver, ok[0])
        WebDriverWait(driver, 5).until(lambda d: not d.find_elements(
            By.CSS_SELECTOR, ".ant-modal-content"))
    return text


def _annotations(ls_client: LabelStudioClient, task_id: int) -> list[Any]:
    return list(ls_client.sdk.annotations.list(id=task_id))


def _wait_annotation(ls_client: LabelStudioClient, task_id: int) -> None:
    deadline = time.monotonic() + 30
    while not _annotations(ls_client, task_id):
        assert time.monotonic() < deadline, "the UI submitted no annotation"
        time.sleep(0.5)


def _figures(tmp_path: Path, **figures: Any) -> None:
    path = tmp_path / "screen-figures.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **figures}, indent=2))
    print("screen figures:", json.dumps(figures))


def test_code_answer_keeps_its_indentation_in_monospace(
        screen: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, _ = labelstudio
    trace = code_answer_trace()
    project_id, tasks, store = _import(ls_client, tmp_path, [trace], "screen-code")
    store.close()
    _open(screen, server, project_id, tasks, trace.trace_id)
    screen.save_screenshot(str(tmp_path / "code-answer.png"))
    answer = screen.find_element(By.CSS_SELECTOR, ".llmt-answer .lsf-richtext__container")
    # the rendered text is the source, character for character (indentation, the table's
    # padding, blank lines)
    assert answer.get_attribute("innerText") == CODE_ANSWER
    style = screen.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.whiteSpace, s.fontFamily]", answer)
    assert style[0] == "pre-wrap"
    assert "monospace" in style[1]
    # column alignment holds: both table rows end at the same pixel
    ends = screen.execute_script("""
        const box = arguments[0], ends = [];
        for (const line of box.querySelectorAll('.lsf-richtext__line')) {
          if (!line.textContent.startsWith('| [')) continue;
          const range = document.createRange(); range.selectNodeContents(line);
          ends.push(Math.round(range.getBoundingClientRect().right));
        }
        return ends;""", answer)
    assert len(ends) == 2 and ends[0] == ends[1], ends
    # the question's indented code, in the conversation, too
    user = screen.find_element(By.CSS_SELECTOR, ".llmt-conversation [class*='dialoguetext--']")
    assert user.get_attribute("innerText") == trace.messages[0].content
    assert _scroll_to_see(screen, _label_of(screen, "fail")) == 0
    _figures(tmp_path, code_answer_scroll_to_verdict_px=0)


def test_verdict_in_view_beside_the_long_agent_trace(
        screen: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, _ = labelstudio
    trace = long_agent_trace()
    project_id, tasks, store = _import(ls_client, tmp_path, [trace], "screen-long")
    store.close()
    _open(screen, server, project_id, tasks, trace.trace_id)
    screen.save_screenshot(str(tmp_path / "long-agent-trace.png"))
    text = str(screen.execute_script("return document.body.innerText"))
    # the verdict, the score and the form are in the viewport as the task opens
    verdict = _rect(screen, _label_of(screen, "fail"))
    assert verdict["top"] >= 0 and verdict["bottom"] <= HEIGHT, verdict
    stars = screen.find_element(By.CSS_SELECTOR, ".llmt-form .ant-rate")
    assert _scroll_to_see(screen, stars) == 0
    form, trace_box = (screen.find_element(By.CSS_SELECTOR, c)
                       for c in (".llmt-form", ".llmt-trace"))
    assert _rect(screen, form)["left"] >= _rect(screen, trace_box)["right"]  # beside it
    # the trace is long: its scroll container holds several screens
    height = screen.execute_script(
        "return document.querySelector('.llmt-trace').getBoundingClientRect().height")
    assert height > 2 * HEIGHT, height
    # the trace in sections: metadata with the trace id first, tool calls inline in the
    # message that made them, no second tool section, no audio timestamps or author filter
    meta = screen.find_element(By.CSS_SELECTOR, ".llmt-meta .lsf-richtext__container")
    assert str(meta.get_attribute("innerText")).splitlines()[0].split() == [
        "trace", "id", trace.trace_id]
    assert "\u2192 lookup_0 [call-0]" in text and "Tool calls" not in text
    assert "00:00:00" not in text and "Show all authors" not in text
    # documents collapsed: their titles shown, their text not until opened
    panels = screen.find_elements(By.CSS_SELECTOR, ".ant-collapse-header")
    assert [p.text for p in panels] == [
        f"document {i + 1} (policy-{i}) score {0.9 - i / 10:g}" for i in range(3)]
    assert "Refund policy section 0." not in text
    _click(screen, panels[0])
    WebDriverWait(screen, 10).until(lambda d: "Refund policy section 0." in str(
        d.execute_script("return document.body.innerText")))
    # scrolled to the end, the final answer is seen whole above the bottom bar and the
    # verdict is still in view (sticky); the opened panel grows while it animates, so the
    # scroll waits for the trace to settle
    _settle(screen, trace_box)
    answer = screen.find_element(By.CSS_SELECTOR, ".llmt-answer")
    screen.execute_script("const s = document.querySelector('.lsf-main-content');"
                          "s.scrollTop = s.scrollHeight")
    _settle(screen, answer)
    assert _scroll_to_see(screen, answer) == 0
    assert _scroll_to_see(screen, _label_of(screen, "fail")) == 0
    screen.save_screenshot(str(tmp_path / "long-agent-trace-end.png"))
    _figures(tmp_path, long_trace_height_px=height, long_trace_scroll_to_verdict_px=0)


def _choose(driver: Any, name: str) -> None:
    _click(driver, driver.find_element(By.NAME, name))
    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.NAME, name).is_selected())


def test_a_failing_verdict_is_refused_without_category_and_explanation(
        screen: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, _ = labelstudio
    failing, passing = (Trace(trace_id=f"screen-rubric-{k}", output="It is sunny in Paris.")
                        for k in ("fail", "pass"))
    project_id, tasks, store = _import(ls_client, tmp_path, [failing, passing], "screen-rubric")
    _open(screen, server, project_id, tasks, failing.trace_id)
    # the categories and the explanation appear with the failing verdict
    assert not _label_of(screen, "hallucination").is_displayed()
    _choose(screen, "fail")
    assert _label_of(screen, "hallucination").is_displayed()
    stars = screen.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star > div")
    _click(screen, stars[1])
    _submit(screen)
    warning = _warning(screen)
    screen.save_screenshot(str(tmp_path / "refused-category.png"))
    assert "at least one failure category" in warning, (
        warning, _annotations(ls_client, tasks[failing.trace_id]))
    _choose(screen, "hallucination")
    _submit(screen)
    warning = _warning(screen)
    screen.save_screenshot(str(tmp_path / "refused-explanation.png"))
    assert "needs your explanation" in warning, (
        warning, [a.result for a in _annotations(ls_client, tasks[failing.trace_id])])
    screen.save_screenshot(str(tmp_path / "refused.png"))
    assert _annotations(ls_client, tasks[failing.trace_id]) == []
    box = screen.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
    box.click()
    box.send_keys("It rained all day.")
    _submit(screen)
    _wait_annotation(ls_client, tasks[failing.trace_id])

    # a pass asks for nothing more (the star rating aside)
    _open(screen, server, project_id, tasks, passing.trace_id)
    _choose(screen, "pass")
    _click(screen, screen.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star > div")[4])
    _submit(screen)
    _wait_annotation(ls_client, tasks[passing.trace_id])

    [summary] = sync_all(ls_client, store, {(V2.id, V2.version): V2}, [project_id])
    assert summary.rejected == 0
    records = {r.trace_id: r for r in store.records(source="reviewer")}
    assert (records[failing.trace_id].label, records[failing.trace_id].labels,
            records[failing.trace_id].explanation) == ("fail", ["hallucination"],
                                                        "It rained all day.")
    assert records[passing.trace_id].label == "pass"
    assert records[passing.trace_id].score == 1.0
    assert records[passing.trace_id].explanation is None
    store.close()


def test_the_judges_explanation_is_the_judges_and_a_cleared_star_is_refused(
        screen: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, creds = labelstudio
    trace = long_agent_trace("screen-judged")
    project_id, tasks, store = _import(ls_client, tmp_path, [trace], "screen-judged")
    task_id = tasks[trace.trace_id]
    task = ls_client.sdk.tasks.get(id=task_id).model_dump(mode="json")
    config = ls_client.project(project_id).label_config or ""
    verdict = Verdict(label="fail", score=0.25, confidence=0.8, categories=("hallucination",),
                      explanation="Claims a refund today; the policy says after 14 days.")
    ls_client.sdk.predictions.create(
        task=task_id, result=to_results(parse_config(config), verdict, task["data"],
                                        JUDGE_VERSION), model_version=JUDGE_VERSION, score=0.8)
    _open(screen, server, project_id, tasks, trace.trace_id)
    # the UI opens on the judge's proposal: verdict, category and score pre-filled, the
    # judge's words in its own box headed with its version, the reviewer's box empty
    WebDriverWait(screen, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.NAME, "fail").is_selected())
    assert screen.find_element(By.NAME, "hallucination").is_selected()
    judge_box = screen.find_element(By.CSS_SELECTOR, ".llmt-judge")
    assert f"Judge {JUDGE_VERSION}:" in judge_box.text and verdict.explanation in judge_box.text
    assert not judge_box.find_elements(By.CSS_SELECTOR, "textarea")  # read-only: no input
    explanation = screen.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
    assert explanation.get_attribute("value") == ""
    screen.save_screenshot(str(tmp_path / "judged.png"))
    stars = screen.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star")
    assert ["full" in (s.get_attribute("class") or "") for s in stars] == [
        True, True, False, False, False]  # 0.25 -> two of five stars

    # a click on the pre-filled star clears it: the submission is refused, not saved
    _click(screen, stars[1].find_element(By.CSS_SELECTOR, "div"))
    _submit(screen)
    assert "Give a score" in _warning(screen)
    _click(screen, stars[1].find_element(By.CSS_SELECTOR, "div"))  # back to two stars
    # agreeing with the judge, in the reviewer's own words: two clicks, no scrolling
    assert _scroll_to_see(screen, explanation) == 0
    explanation.click()
    explanation.send_keys("The refund is promised today; policy says 14 days.")
    _submit(screen)
    clicks = 2  # the two clicks above: the explanation box and Submit
    _wait_annotation(ls_client, task_id)
    [annotation] = _annotations(ls_client, task_id)
    origins = {r["from_name"]: r.get("origin") for r in annotation.result}
    assert origins.pop("score") == "manual"  # cleared and given again: the reviewer's own
    assert origins == {"verdict": "prediction", "categories": "prediction",
                       "judge_explanation": "prediction", "explanation": "manual"}

    [summary] = sync_all(ls_client, store, {(V2.id, V2.version): V2}, [project_id])
    assert summary.rejected == 0
    [record] = [r for r in store.records(source="reviewer") if r.scope.kind == "trace"]
    assert record.author == creds.email
    assert record.label == "fail" and record.labels == ["hallucination"]
    assert record.score == 0.25
    # the reviewer's words, never the judge's
    assert record.explanation == "The refund is promised today; policy says 14 days."
    assert verdict.explanation not in json.dumps(record.model_dump(mode="json"))
    assert record.origins["explanation"] == "manual"
    assert record.prediction is not None and record.prediction.model_version == JUDGE_VERSION
    _figures(tmp_path, failure_with_proposal_clicks=clicks, failure_with_proposal_scroll_px=0)
    store.close()


def test_the_sample_traces_render(
        screen: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path) -> None:
    server, _ = labelstudio
    traces = [t for t in read_native(REPO / "examples" / "sample_traces.jsonl")
              if isinstance(t, Trace)]
    assert len(traces) >= 20
    project_id, tasks, store = _import(ls_client, tmp_path, traces, "screen-samples")
    store.close()
    for trace in traces:
        _open(screen, server, project_id, tasks, trace.trace_id)
        answer = screen.find_element(By.CSS_SELECTOR, ".llmt-answer .lsf-richtext__container")
        assert answer.get_attribute("innerText") == trace.output, trace.trace_id
        text = str(screen.execute_script("return document.body.innerText"))
        assert trace.trace_id in text and "Not expecting tag" not in text
        assert _scroll_to_see(screen, _label_of(screen, "fail")) == 0, trace.trace_id
    screen.save_screenshot(str(tmp_path / "last-sample.png"))
