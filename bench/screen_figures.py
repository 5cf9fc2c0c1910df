"""The review screen's cost to a reviewer, before and after: how far one scrolls to reach
the verdict, and the clicks and scrolling needed to label a failure with a category and
one's own explanation (with the judge's proposal pre-filled, and without), in Label
Studio's real labeling UI (headless Chromium, a 1440x900 viewport), on the same traces
(tests/support/screen_traces.py: the long agent trace and the code answer).

"Before" is the default.v2 label config of a git revision (``--before``, default the
commit before the review screen), "after" the working tree's; both get the task data of
the working tree's converter (it keeps every key the old config reads). Each click is done
for real, starting from the top of the trace (a reviewer reads it first), and the
scrolling is what brings each target into view (to the middle of the labeling area, when
it is not in view; summed over the scrolled containers); the script checks that every
labelling ends in a saved annotation with the category and the reviewer's words.

    .venv/bin/python bench/screen_figures.py [--before REV] [--out bench/results/screen.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from tests.support.fake_llm_server import free_port  # noqa: E402
from tests.support.screen_traces import code_answer_trace, long_agent_trace  # noqa: E402

from ls_llmtrace import settings  # noqa: E402
from ls_llmtrace.ingest.convert import trace_to_task  # noqa: E402
from ls_llmtrace.judging.judges import Verdict  # noqa: E402
from ls_llmtrace.judging.predictions import to_results  # noqa: E402
from ls_llmtrace.labelstudio.client import LabelStudioClient  # noqa: E402
from ls_llmtrace.labelstudio.results import parse_config  # noqa: E402
from ls_llmtrace.labelstudio.server import ManagedLabelStudio  # noqa: E402
from ls_llmtrace.models import Trace  # noqa: E402
from ls_llmtrace.schema.labelconfig import build_label_config  # noqa: E402
from ls_llmtrace.schema.model import load_schema  # noqa: E402

BEFORE = "4f9f3c8"  # main before the review screen
SCHEMA = load_schema(REPO / "label_configs" / "default.v2.yaml")
VERSION = "llm-v3@default@v2"
VERDICT = Verdict(label="fail", score=0.25, confidence=0.8, categories=("hallucination",),
                  explanation="The answer is not supported by the trace.")
OWN_WORDS = "My own reason: the tool results say otherwise."

# the part of the viewport where an element can be seen: the viewport cut by every
# scrolling ancestor (the labeling area scrolls inside the page)
VISIBLE = """
function visible(el) {
  let top = 0, bottom = innerHeight;
  for (let e = el.parentElement; e; e = e.parentElement) {
    const y = getComputedStyle(e).overflowY;
    if (e.scrollHeight > e.clientHeight && (y === 'auto' || y === 'scroll')) {
      const b = e.getBoundingClientRect();
      top = Math.max(top, b.top); bottom = Math.min(bottom, b.top + e.clientHeight);
    }
  }
  return [top, bottom];
}
"""
# scrolls the element to the middle of its container when it is not in view; returns
# how far every container moved
SCROLL_INTO_VIEW = VISIBLE + """
const el = arguments[0], before = [];
for (let e = el.parentElement; e; e = e.parentElement) before.push([e, e.scrollTop]);
const r = el.getBoundingClientRect(), [top, bottom] = visible(el);
if (r.top >= top && r.bottom <= bottom) return 0;
el.scrollIntoView({block: 'center', inline: 'nearest'});
let moved = 0;
for (const [e, t] of before) moved += Math.abs(e.scrollTop - t);
return moved;
"""
# how far the element is from being in view (0 when it is)
TO_VIEW = VISIBLE + """
const r = arguments[0].getBoundingClientRect(), [top, bottom] = visible(arguments[0]);
return Math.max(0, r.bottom - bottom) + Math.max(0, top - r.top);
"""


class Reviewer:
    """Counts clicks and the scrolling that brings each click's target into view (to
    the middle of its scrolling container, when it is not in view already)."""

    def __init__(self, driver: Any) -> None:
        self.driver, self.clicks, self.scrolled = driver, 0, 0.0

    def click(self, element: Any) -> None:
        self.scrolled += float(self.driver.execute_script(SCROLL_INTO_VIEW, element))
        time.sleep(0.2)
        self.driver.execute_script("arguments[0].click()", element)
        self.clicks += 1
        time.sleep(0.3)


def _driver(profile: Path) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1440,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")
                                              or "/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    driver.set_page_load_timeout(90)
    return driver


def _open(driver: Any, url: str, project_id: int, task_id: int, answer: str) -> None:
    driver.get(f"{url}/projects/{project_id}/data?task={task_id}")
    WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.NAME, "fail"))
    WebDriverWait(driver, 30).until(lambda d: answer[:40] in str(
        d.execute_script("return document.body.innerText")))
    time.sleep(1.0)
    # the reviewer starts at the top of the trace (the old layout opens scrolled to its
    # bottom, where Label Studio focuses the explanation box)
    driver.execute_script("for (const e of document.querySelectorAll('*'))"
                          " if (e.scrollTop) e.scrollTop = 0;")
    time.sleep(0.3)


def _visible(driver: Any, css: str) -> Any:
    return next(e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed())


def _label(driver: Any, name: str) -> Any:
    return driver.find_element(By.NAME, name).find_element(By.XPATH, "ancestor::label[1]")


def _write(reviewer: Reviewer, driver: Any) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "textarea[name=explanation]")
    reviewer.click(box)
    box.send_keys(OWN_WORDS)


def _submit(reviewer: Reviewer, driver: Any, client: LabelStudioClient, task_id: int) -> None:
    reviewer.click(driver.find_element(By.XPATH, "//button[normalize-space()='Submit']"))
    deadline = time.monotonic() + 30
    while not client.sdk.tasks.get(id=task_id).annotations:
        if time.monotonic() > deadline:
            raise SystemExit(f"task {task_id}: the UI saved no annotation")
        time.sleep(0.5)
    [annotation] = client.sdk.tasks.get(id=task_id).annotations
    values = {r["from_name"]: r["value"] for r in annotation["result"]}
    if values.get("categories", {}).get("choices") != ["hallucination"] \
            or values.get("explanation", {}).get("text") != [OWN_WORDS]:
        raise SystemExit(f"task {task_id}: saved without the category or own words: {values}")


def label_without_proposal(driver: Any, client: LabelStudioClient, url: str,
                           project_id: int, task_id: int, trace: Trace) -> Reviewer:
    _open(driver, url, project_id, task_id, trace.output)
    reviewer = Reviewer(driver)
    reviewer.click(_label(driver, "fail"))
    reviewer.click(_label(driver, "hallucination"))
    reviewer.click(driver.find_elements(By.CSS_SELECTOR, ".ant-rate .ant-rate-star > div")[1])
    _write(reviewer, driver)
    _submit(reviewer, driver, client, task_id)
    return reviewer


def label_with_proposal(driver: Any, client: LabelStudioClient, url: str, project_id: int,
                        task_id: int, trace: Trace) -> Reviewer:
    _open(driver, url, project_id, task_id, trace.output)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.NAME, "fail").is_selected())
    reviewer = Reviewer(driver)
    if not driver.find_elements(By.CSS_SELECTOR, "textarea[name=explanation]"):
        # the judge's words fill the reviewer's one explanation: delete them first
        region = driver.find_element(By.CSS_SELECTOR, "[name^='explanation:']")
        row = region.find_element(By.XPATH, "ancestor::*[@data-testid='textarea-region'][1]")
        reviewer.click(row.find_element(By.CSS_SELECTOR, "[aria-label='Delete Region']"))
    _write(reviewer, driver)
    _submit(reviewer, driver, client, task_id)
    return reviewer


def measure(client: LabelStudioClient, driver: Any, url: str, name: str,
            config: str) -> dict[str, Any]:
    traces = {"long agent trace": long_agent_trace(), "code answer": code_answer_trace()}
    out: dict[str, Any] = {}
    for label, trace in traces.items():
        project = client.sdk.projects.create(title=f"screen {name} {label} {time.time():.0f}",
                                             label_config=config)
        task = trace_to_task(trace, SCHEMA)
        made = client.sdk.projects.import_tasks(id=project.id, request=[task, task],
                                                return_task_ids=True)
        bare, judged = made.task_ids
        data = client.sdk.tasks.get(id=judged).data
        client.sdk.predictions.create(task=judged, model_version=VERSION, score=0.8,
                                      result=to_results(parse_config(config), VERDICT, data,
                                                        VERSION))
        _open(driver, url, project.id, bare, trace.output)
        to_verdict = float(driver.execute_script(TO_VIEW, _label(driver, "fail")))
        without = label_without_proposal(driver, client, url, project.id, bare, trace)
        with_judge = label_with_proposal(driver, client, url, project.id, judged, trace)
        out[label] = {"scroll_to_verdict_px": round(to_verdict),
                      "without_proposal": {"clicks": without.clicks,
                                           "scroll_px": round(without.scrolled)},
                      "with_proposal": {"clicks": with_judge.clicks,
                                        "scroll_px": round(with_judge.scrolled)}}
    return out


def table(before: dict[str, Any], after: dict[str, Any], rev: str) -> str:
    lines = [f"Review screen at 1440x900 (bench/screen_figures.py; before: default.v2 config "
             f"of {rev}, after: this tree)", "",
             "| trace | figure | before | after |", "|---|---|---|---|"]
    for trace in before:
        b, a = before[trace], after[trace]
        lines.append(f"| {trace} | scroll to the verdict | {b['scroll_to_verdict_px']:,} px "
                     f"| {a['scroll_to_verdict_px']:,} px |")
        for key, what in (("with_proposal", "label a failure (category + own explanation), "
                           "judge's proposal pre-filled"),
                          ("without_proposal", "label a failure, no proposal")):
            lines.append(f"| {trace} | {what} | {b[key]['clicks']} clicks, "
                         f"{b[key]['scroll_px']:,} px | {a[key]['clicks']} clicks, "
                         f"{a[key]['scroll_px']:,} px |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the old layout")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "screen.md")
    args = parser.parse_args()
    old = subprocess.run(["git", "-C", str(REPO), "show",
                          f"{args.before}:label_configs/default.v2.xml"],
                         check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory(prefix="screen-figures-") as tmp:
        server = ManagedLabelStudio(Path(tmp) / "ls", free_port(), settings.ls_bin())
        creds = server.start(timeout=300)
        driver = _driver(Path(tmp) / "profile")
        try:
            driver.get(f"{server.url}/user/login/")
            driver.find_element(By.NAME, "email").send_keys(creds.email)
            driver.find_element(By.NAME, "password").send_keys(creds.password)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            WebDriverWait(driver, 30).until(lambda d: "/user/login" not in d.current_url)
            client = LabelStudioClient(server.url, creds.token)
            before = measure(client, driver, server.url, "before", old)
            after = measure(client, driver, server.url, "after", build_label_config(SCHEMA))
        finally:
            driver.quit()
            server.stop()
    text = table(before, after, args.before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"before": before, "after": after},
                                                        indent=2) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
