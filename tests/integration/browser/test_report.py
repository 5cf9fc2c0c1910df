"""The ``report`` page renders in headless Chromium from the file alone: every chart is
drawn by plotly (its SVG nodes are there), no request leaves the page (Chromium's own
network log, with every host unresolvable), and a screenshot is saved. The queue is the
planted one of tests/support/judged_queue.py in a SQLite store, with a real golden set
built from it by ``golden build`` and one calibration run in the shape ``calibrate``
records."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.support.judged_queue import planted_queue

from ls_llmtrace.cli import main
from ls_llmtrace.evals.judged import queue_verdicts
from ls_llmtrace.evals.report import build_report, golden_manifest
from ls_llmtrace.store import Store

LABEL_CONFIGS = Path(__file__).resolve().parents[3] / "label_configs"
CHARTS = ("rates-model_version", "rates-product_area", "agreement", "confusion",
          "categories", "alpha", "reviewers", "calibration", "golden")


@pytest.fixture()
def chromium(tmp_path: Path) -> Iterator[Any]:
    """A bare headless Chromium (no Label Studio) that logs every network request and
    cannot resolve any host."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium_bin, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium_bin or not driver_bin:
        pytest.fail("Chromium is not installed: run `make setup` (apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_bin
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1300,5200",
                 f"--user-data-dir={tmp_path / 'profile'}",
                 "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", "sqlite:///" + str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(LABEL_CONFIGS))
    planted = planted_queue()
    with Store() as store:
        store.set_queue("review", 1, "default", 2, "review", "llmtrace review | default@v2")
        store.remember_project(1, "review", "default", 2, "llmtrace review | default@v2")
        store.upsert_traces(planted.traces)
        with store.transaction() as conn:
            for r in planted.records:
                Store.upsert_record(conn, r)
    built = CliRunner().invoke(main, ["golden", "build", "--queue", "review", "--out",
                                      str(tmp_path / "golden")])
    assert built.exit_code == 0, built.output
    manifest = golden_manifest(tmp_path / "golden")
    assert manifest is not None and manifest.counts["per_category"]
    kappa = {"before": {"value": 0.52, "low": 0.41, "high": 0.63},
             "after": {"value": 0.71, "low": 0.62, "high": 0.80}}
    calibration = {"calibration_id": 1, "judge_kind": "learned", "schema_id": "default",
                   "schema_version": 2,
                   "result": {side: {"kappa": kappa[side]} for side in kappa}}
    with Store() as store:
        qv = queue_verdicts(store, "review")
    return build_report(qv, tmp_path / "report", seed=0, n_resamples=200,
                        calibrations=[calibration], manifest=manifest,
                        now=datetime(2026, 2, 2, tzinfo=UTC))


def _requests(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


DRAWN = """
const out = {};
for (const div of document.querySelectorAll('.plotly-graph-div')) {
  out[div.id] = {
    svg: div.querySelectorAll('svg.main-svg').length,
    marks: div.querySelectorAll(
      '.trace.bars .point path, .scatterlayer .trace .lines path, .scatterlayer .point, '
      + '.hm image, .heatmaplayer image').length,
    title: (div.querySelector('.gtitle') || {}).textContent || '',
  };
}
return out;
"""


def test_report_renders_offline_with_every_chart(chromium: Any, report: Path,
                                                 tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(report.as_uri())
    WebDriverWait(chromium, 60).until(
        lambda d: len(d.find_elements("css selector", ".plotly-graph-div svg.main-svg"))
        >= len(CHARTS))
    drawn = chromium.execute_script(DRAWN)
    for chart in CHARTS:
        found = drawn.get(f"chart-{chart}")
        assert found is not None, (chart, sorted(drawn))
        assert found["svg"] >= 1 and found["marks"] > 0, (chart, found)
        assert found["title"], chart
    assert "Calibration: before and after" in chromium.page_source
    text = chromium.execute_script("return document.body.innerText")
    assert "support" in text and "Krippendorff" in text
    requests = _requests(chromium)
    assert report.as_uri() in requests
    # (Chromium's own chrome:// pages load their resources in the same log)
    assert [u for u in requests if u.split(":", 1)[0] in ("http", "https", "ws", "wss",
                                                          "ftp")] == []
    shot = tmp_path / "report.png"
    chromium.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 50_000
