"""The failure categories `schema suggest` proposes from a queue's failure clusters reach
the reviewers: once the draft is pushed, Label Studio's labeling UI (headless Chromium)
offers each of them as a choice when the verdict is fail."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.support.cluster_queue import reviewed_queue, run_cli, schema_dir

from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.schema.model import load_schema


def _choice_label(driver: Any, name: str) -> Any:
    """The label of the choice input ``name`` (antd hides the input itself; its label shows)."""
    return driver.find_element(By.NAME, name).find_element(By.XPATH, "ancestor::label[1]")


def test_suggested_categories_are_offered_in_the_labeling_ui_on_fail(
        browser: Any, ls_client: LabelStudioClient,
        labelstudio: tuple[ManagedLabelStudio, Credentials], ls_env: Path,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, _ = labelstudio
    schemas = schema_dir(ls_env, monkeypatch)
    queue = "clq-ui"
    project_id, tasks, reviews, _ = reviewed_queue(ls_client, ls_env, queue)

    suggested = run_cli("schema", "suggest", "--queue", queue, "--json")
    assert suggested.exit_code == 0, suggested.output
    proposed = [row["category"] for row in json.loads(suggested.output)["proposed"]]
    assert len(proposed) >= 3, proposed
    draft_path = schemas / "default.v2.yaml"
    draft = load_schema(draft_path)
    assert set(proposed) <= set(draft.categories)
    pushed = run_cli("schema", "push", draft_path, "--queue", queue)
    assert pushed.exit_code == 0, pushed.output

    # a task its reviewer passed: the UI opens on that annotation, verdict pass
    task_id = tasks[next(r.trace_id for r in reviews if r.label == "pass")]
    browser.get(f"{server.url}/projects/{project_id}/data?task={task_id}")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.NAME, "fail") and d.find_elements(By.NAME, proposed[0]))
    assert "(schema default@v2)" in browser.execute_script("return document.body.innerText")
    assert browser.find_element(By.NAME, "pass").is_selected()
    # hidden until a failing verdict is chosen
    for category in draft.categories:
        assert not _choice_label(browser, category).is_displayed(), category
    browser.execute_script("arguments[0].click()", browser.find_element(By.NAME, "fail"))
    WebDriverWait(browser, 10).until(lambda d: _choice_label(d, proposed[0]).is_displayed())
    shot = tmp_path / "suggested-categories-fail.png"
    browser.save_screenshot(str(shot))
    for category in draft.categories:  # the proposed ones and any the schema already had
        label = _choice_label(browser, category)
        assert label.is_displayed(), category
        # its name, and the hotkey Label Studio gives it ("result_tool[3]")
        assert re.fullmatch(rf"{re.escape(category)}(\[\w\])?", label.text.strip()), (
            category, label.text)
    assert shot.stat().st_size > 10_000
