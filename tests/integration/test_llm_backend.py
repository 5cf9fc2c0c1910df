"""The ML backend with the LLM judge against the real Label Studio.

The backend runs under gunicorn with basic auth and a webhook secret; the LLM is the local
OpenAI-compatible server process. Label Studio connects with basic auth, runs the Data
Manager action, stores predictions with the right controls, score and model_version;
asking again creates nothing and makes no LLM call; interactive pre-annotation works;
`ls-llmtrace predict` does the same from the command line, with progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from tests.support.fake_llm_server import FakeLLM
from tests.unit.judge_configs import FULL_CONFIG, ITEST_SCHEMA

from ls_llmtrace.cli import main
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import free_port

API_KEY = "sk-itest-SECRET-0000"
AUTH = ("labelstudio", "b4sic-pässword")
ANSWERS = [
    "It is sunny and 57F in Paris. Enjoy! [[case:good]]",
    "Paris is the capital of France. [[case:pass]]",
    "The Eiffel Tower is in Rome. [[case:good]]",
    "Water boils at 100C at sea level. [[case:pass]]",
    "This reply will come back as broken JSON. [[case:malformed]]",
]
GOOD = {"verdict": "fail", "score": 0.2, "confidence": 0.9,
        "explanation": "The answer contradicts the tool result.",
        "categories": ["hallucination"],
        "spans": [{"label": "hallucination", "quote": "sunny", "where": "answer"},
                  {"label": "unsafe", "quote": "rainy, 57F", "where": "message",
                   "message_index": 1}]}
PASS = {"verdict": "pass", "score": 0.95, "confidence": 0.7, "explanation": "Correct.",
        "categories": [], "spans": []}


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=API_KEY) as server:
        server.script("good", {"content": json.dumps(GOOD)})
        server.script("pass", {"content": json.dumps(PASS)})
        server.script("malformed", {"content": "{not json"})
        yield server


@pytest.fixture(scope="module")
def llm_backend(llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[ManagedBackend]:
    run_dir = tmp_path_factory.mktemp("llm-backend")
    schemas = run_dir / "schemas"
    schemas.mkdir()
    (schemas / "itest.v1.yaml").write_text(ITEST_SCHEMA)
    managed = ManagedBackend(run_dir, free_port(), auth=AUTH)
    managed.start(env={
        "LS_LLMTRACE_HOME": str(run_dir), "LS_LLMTRACE_LLM_BASE_URL": llm.base_url,
        "LS_LLMTRACE_LLM_API_KEY": API_KEY, "LS_LLMTRACE_LLM_MODEL": "fake-judge",
        "LS_LLMTRACE_LLM_TIMEOUT": "5", "LS_LLMTRACE_LLM_MAX_RETRIES": "1",
        "LS_LLMTRACE_LLM_RETRY_BASE": "0.05", "LS_LLMTRACE_SCHEMA_DIR": str(schemas),
        "LS_LLMTRACE_BACKEND_USER": AUTH[0], "LS_LLMTRACE_BACKEND_PASSWORD": AUTH[1],
        "LS_LLMTRACE_WEBHOOK_SECRET": "hook-secret", "LS_LLMTRACE_JUDGE": "llm",
        "LS_LLMTRACE_LS_TOKEN": "", "LOG_LEVEL": "DEBUG",
    })
    yield managed
    managed.stop()


def _project(ls: LabelStudioClient, title: str, suffix: str = "") -> int:
    """A project with our full config and five tasks; the suffix makes their content
    (and so their cache keys) differ from other projects'."""
    project = ls.sdk.projects.create(title=title, label_config=FULL_CONFIG)
    messages = [{"role": "user", "content": "Is it raining in Paris?"},
                {"role": "tool", "content": "rainy, 57F"}]
    ls.import_tasks(int(project.id), [
        {"data": {"trace_id": f"{title}-{i}", "messages": messages, "answer": answer + suffix}}
        for i, answer in enumerate(ANSWERS)])
    return int(project.id)


def _tasks(ls: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in
            ls.sdk.tasks.list(project=project_id, fields="all", page_size=100)]


def _metrics(backend: ManagedBackend) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{backend.url}/metrics", auth=AUTH, timeout=5).json()
    return result


def test_predictions_through_label_studio(ls_client: LabelStudioClient, llm: FakeLLM,
                                          llm_backend: ManagedBackend) -> None:
    project_id = _project(ls_client, "llm-judge-dm")
    assert requests.get(f"{llm_backend.url}/health", timeout=5).status_code == 401
    backend_id = ls_client.connect_backend(project_id, llm_backend.url, basic_auth=AUTH)
    version = requests.get(f"{llm_backend.url}/versions", auth=AUTH,
                           timeout=5).json()["versions"][0]
    assert version.startswith("llmtrace-llm:fake-judge-v1.") and version.endswith("@itest@v1")
    calls_before = llm.stats()["calls"]

    ls_client.retrieve_predictions(project_id)
    assert ls_client.prediction_count(project_id) == 4  # the malformed reply: no prediction
    assert llm.stats()["calls"] - calls_before == 5
    tasks = {t["data"]["answer"]: t for t in _tasks(ls_client, project_id)}
    broken = tasks[ANSWERS[4]]
    assert broken["predictions"] == []
    sunny = tasks[ANSWERS[0]]
    [prediction] = sunny["predictions"]
    assert prediction["model_version"] == version
    assert prediction["score"] == pytest.approx(0.9)
    by_name = {r["from_name"]: r for r in prediction["result"]}
    assert set(by_name) == {"verdict", "categories", "score", "explanation", "answer_spans",
                            "message_spans"}
    assert by_name["verdict"]["value"]["choices"] == ["fail"]
    assert by_name["categories"]["value"]["choices"] == ["hallucination"]
    assert by_name["score"]["value"]["number"] == pytest.approx(0.2)
    span = by_name["answer_spans"]["value"]
    assert (span["start"], span["end"], span["labels"]) == (6, 11, ["hallucination"])
    assert ANSWERS[0][span["start"]:span["end"]] == "sunny"
    message_span = by_name["message_spans"]["value"]
    assert (message_span["start"], message_span["startOffset"], message_span["endOffset"],
            message_span["paragraphlabels"]) == ("1", 0, 10, ["unsafe"])
    passing = tasks[ANSWERS[1]]["predictions"][0]
    assert [r["from_name"] for r in passing["result"]] == ["verdict", "score", "explanation"]

    # asking again: Label Studio skips this judge's tasks; only the failed one is re-asked
    calls_before = llm.stats()["calls"]
    ls_client.retrieve_predictions(project_id)
    assert ls_client.prediction_count(project_id) == 4
    assert llm.stats()["calls"] - calls_before == 1
    by_marker = llm.stats()["by_marker"]
    assert by_marker["malformed"] == 2

    # predictions deleted in Label Studio come back from the cache: no LLM call
    ls_client.sdk.predictions.delete(id=prediction["id"])
    llm.script("malformed", {"content": json.dumps(PASS)})  # the provider recovered
    calls_before = llm.stats()["calls"]
    ls_client.retrieve_predictions(project_id)
    assert ls_client.prediction_count(project_id) == 5
    assert llm.stats()["calls"] - calls_before == 1  # only the previously failed task
    metrics = _metrics(llm_backend)
    assert metrics["cache_hits"] >= 1 and metrics["failures"] >= 2
    assert metrics["invalid_replies"] >= 2

    # interactive pre-annotation: Label Studio relays the backend's answer, stores nothing
    response = requests.post(
        f"{ls_client.url}/api/ml/{backend_id}/interactive-annotating",
        headers={"Authorization": f"Token {ls_client.token}"},
        json={"task": sunny["id"], "context": {"result": []}}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    result = body["data"]  # the backend's prediction for the task, relayed as is
    assert result["model_version"] == version
    assert {r["from_name"] for r in result["result"]} >= {"verdict", "answer_spans"}
    assert ls_client.prediction_count(project_id) == 5

    # the API key never reached the backend's log
    log_text = llm_backend.log_file.read_text(errors="replace")
    assert "no prediction for task" in log_text  # the failures were logged
    assert API_KEY not in log_text and AUTH[1] not in log_text


def test_cli_predict_with_progress(ls_client: LabelStudioClient, llm: FakeLLM,
                                   llm_backend: ManagedBackend, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    llm.script("malformed", {"content": "{not json"})
    schema_file = tmp_path / "itest.v1.yaml"
    schema_file.write_text(ITEST_SCHEMA)
    project_id = _project(ls_client, "llmtrace review | itest@v1", " (cli)")
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", ls_client.url)
    monkeypatch.setenv("LS_LLMTRACE_LS_TOKEN", ls_client.token)
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", AUTH[0])
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", AUTH[1])
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    args = ["predict", "--schema", str(schema_file), "--backend-url", llm_backend.url,
            "--batch-size", "2"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("... ") == 3  # 5 tasks in batches of 2
    assert f"project {project_id}: 4 predictions created for 5 tasks lacking one" in \
        first.output
    assert "1 still without" in first.output
    assert ls_client.prediction_count(project_id) == 4
    calls = llm.stats()["calls"]
    state = preannotate(ls_client, project_id, llm_backend.url, AUTH, batch_size=2)
    assert (state.total_tasks, state.pending, state.created) == (5, 1, 0)
    assert llm.stats()["calls"] == calls + 1  # only the task without a prediction
    again = CliRunner().invoke(main, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["pending"] == 1

    # with a webhook secret set, `predict` adds it to Label Studio's webhook to the backend,
    # so the labelling events get through (Label Studio creates that webhook without it)
    monkeypatch.setenv("LS_LLMTRACE_WEBHOOK_SECRET", "hook-secret")
    before = _metrics(llm_backend)
    assert CliRunner().invoke(main, args).exit_code == 0
    hooks = [h for h in ls_client.sdk.webhooks.list(project=str(project_id))
             if (h.url or "").startswith(llm_backend.url)]
    assert [h.headers for h in hooks] == [{"X-LLMTrace-Secret": "hook-secret"}]
    task_id = _tasks(ls_client, project_id)[0]["id"]
    ls_client.sdk.annotations.create(id=task_id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["pass"]}}])
    after = _metrics(llm_backend)
    assert after.get("webhook_annotation_created", 0) == \
        before.get("webhook_annotation_created", 0) + 1
    assert after.get("auth_failures", 0) == before.get("auth_failures", 0)


def test_backend_refuses_wrong_auth_and_oversized_requests(llm_backend: ManagedBackend
                                                           ) -> None:
    url = llm_backend.url
    assert requests.post(f"{url}/predict", json={"tasks": []}, timeout=5).status_code == 401
    assert requests.post(f"{url}/predict", json={"tasks": []}, auth=(AUTH[0], "x"),
                         timeout=5).status_code == 401
    assert requests.post(f"{url}/webhook", json={"action": "X"}, timeout=5).status_code == 401
    ok = requests.post(f"{url}/webhook", json={"action": "X"},
                       headers={"X-LLMTrace-Secret": "hook-secret"}, timeout=5)
    assert ok.status_code == 200
    big = requests.post(f"{url}/predict", data=b"{" + b" " * (51 * 1024 * 1024) + b"}",
                        headers={"Content-Type": "application/json"}, auth=AUTH, timeout=60)
    assert big.status_code == 413
    assert "Traceback" not in big.text
    time.sleep(0)  # keep the module's processes warm for the next test
