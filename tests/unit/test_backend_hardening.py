"""The backend against hostile and slow peers: closed by default, strict request bodies,
a /predict time budget that holds whatever the LLM provider does, and a broken cache or
learned-evaluator file that degrades instead of failing.

The provider is the local fake (a real HTTP server process) misbehaving on purpose; the
backend runs through Flask's test client (the gunicorn process is in
tests/integration/test_backend_faults.py).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_llm_server import FakeLLM

from ls_llmtrace.errors import ConfigError, JudgeCallError, JudgeReplyError
from ls_llmtrace.judging.backend import MAX_JSON_DEPTH, create_app, json_depth_over
from ls_llmtrace.judging.judges import Metrics
from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig

from .judge_configs import FULL_CONFIG, ITEST_SCHEMA
from .paths import DEFAULT_XML

GOOD = json.dumps({"verdict": "pass", "score": 0.9, "confidence": 0.8,
                   "explanation": "Supported.", "categories": [], "spans": []})
MESSAGES = [{"role": "user", "content": "hello [[case:%s]]"}]


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _client(llm: FakeLLM, timeout: float = 5.0, retries: int = 2) -> ChatClient:
    config = LLMConfig(llm.base_url, "fake-judge", timeout=timeout, max_retries=retries,
                       retry_base=0.05)
    return ChatClient(config, Metrics())


def _messages(marker: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": m["content"] % marker} for m in MESSAGES]


# The LLM exchange has one deadline ---------------------------------------------------

@pytest.mark.parametrize("fault", [
    {"mode": "trickle", "content": GOOD, "interval": 0.2},
    {"mode": "trickle_head", "content": GOOD, "interval": 0.2},
    {"mode": "hang"},
])
def test_a_slow_or_silent_provider_is_cut_at_the_deadline(llm: FakeLLM, fault) -> None:
    """Each byte of a trickle arrives well within any socket timeout: only a deadline on
    the whole exchange stops it (before: the per-read timeout never fired)."""
    llm.script(f"slow-{fault['mode']}", fault)
    client = _client(llm, timeout=30.0, retries=3)
    started = time.monotonic()
    with pytest.raises(JudgeCallError):
        client.complete(_messages(f"slow-{fault['mode']}"), until=started + 1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed


def test_the_llm_timeout_bounds_one_whole_exchange(llm: FakeLLM) -> None:
    llm.script("trickle-timeout", {"mode": "trickle", "content": GOOD, "interval": 0.1},
               {"content": GOOD})
    client = _client(llm, timeout=1.0, retries=1)
    started = time.monotonic()
    assert json.loads(client.complete(_messages("trickle-timeout")))["verdict"] == "pass"
    assert time.monotonic() - started < 2.5  # the cut first try (1 s), then the good one
    assert client.metrics.snapshot()["judge_calls"] == 2


def test_retry_after_beyond_the_deadline_means_not_now(llm: FakeLLM) -> None:
    llm.script("busy", {"status": 429, "headers": {"Retry-After": "30"}})
    client = _client(llm, timeout=10.0, retries=3)
    started = time.monotonic()
    with pytest.raises(JudgeCallError, match="not now"):
        client.complete(_messages("busy"), until=started + 5.0)
    assert time.monotonic() - started < 1.0  # no 30 s sleep first
    assert client.metrics.snapshot()["judge_not_now"] == 1
    assert llm.stats()["by_marker"]["busy"] == 1


def test_retry_after_within_the_deadline_is_honoured(llm: FakeLLM) -> None:
    llm.script("brief", {"status": 429, "headers": {"Retry-After": "0.3"}},
               {"content": GOOD})
    client = _client(llm)
    started = time.monotonic()
    assert json.loads(client.complete(_messages("brief"), until=started + 5.0))
    assert 0.3 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 503}, {"mode": "reset"}, {"mode": "cut", "content": GOOD},
    {"mode": "garbage"},
])
def test_transient_failures_are_retried_inside_the_budget(llm: FakeLLM, fault) -> None:
    marker = f"flaky-{fault.get('mode') or fault['status']}"
    llm.script(marker, fault, {"content": GOOD})
    client = _client(llm)
    assert json.loads(client.complete(_messages(marker), until=time.monotonic() + 5))
    assert llm.stats()["by_marker"][marker] == 2


def test_a_malformed_chat_completion_is_a_reply_error(llm: FakeLLM) -> None:
    llm.script("malformed-body", {"body": "{\"choices\": [oops"})
    with pytest.raises(JudgeReplyError):
        _client(llm).complete(_messages("malformed-body"), until=time.monotonic() + 5)


# /predict keeps its budget; good tasks of the batch still get predictions ---------------

def _task(task_id: int, marker: str) -> dict[str, Any]:
    return {"id": task_id, "data": {"trace_id": f"t{task_id}", "messages": MESSAGES,
                                    "answer": f"answer {task_id} [[case:{marker}]]"}}


@pytest.fixture()
def llm_backend(llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    llm.reset()
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "itest.v1.yaml").write_text(ITEST_SCHEMA)
    env = {"LS_LLMTRACE_HOME": str(tmp_path / "home"), "LS_LLMTRACE_LLM_BASE_URL": llm.base_url,
           "LS_LLMTRACE_LLM_MODEL": "fake-judge", "LS_LLMTRACE_LLM_TIMEOUT": "30",
           "LS_LLMTRACE_LLM_MAX_RETRIES": "3", "LS_LLMTRACE_LLM_RETRY_BASE": "0.05",
           "LS_LLMTRACE_SCHEMA_DIR": str(schemas), "LS_LLMTRACE_JUDGE_CONCURRENCY": "4",
           "LS_LLMTRACE_PREDICT_BUDGET_S": "2", "LS_LLMTRACE_JUDGE": "llm",
           "LS_LLMTRACE_JUDGE_FEW_SHOT": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LS_LLMTRACE_JUDGE_GOLDEN", raising=False)
    return create_app()


def test_predict_answers_within_its_budget_with_the_good_tasks(llm: FakeLLM,
                                                               llm_backend) -> None:
    """10 tasks, 4 judged at once: 2 trickle, 1 hangs, 1 is rate limited for 30 s. The
    answer comes by the 2 s budget, the 6 good tasks predicted; the others are asked
    again on the next call and then predicted (nothing lost, nothing twice)."""
    llm.script("trickle", {"mode": "trickle", "content": GOOD, "interval": 0.3})
    llm.script("hang", {"mode": "hang"})
    llm.script("limited", {"status": 429, "headers": {"Retry-After": "30"}})
    markers = ["good", "trickle", "good", "hang", "good", "trickle", "good", "limited",
               "good", "good"]
    tasks = [_task(i, m) for i, m in enumerate(markers)]
    client = llm_backend.test_client()
    started = time.monotonic()
    response = client.post("/predict", json={"tasks": tasks, "label_config": FULL_CONFIG})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2.8, elapsed
    results = response.get_json()["results"]
    assert [bool(r) for r in results] == [m == "good" for m in markers]
    metrics = client.get("/metrics").get_json()
    assert metrics["tasks_without_prediction"] == 4

    for marker in ("trickle", "hang", "limited"):  # the provider is fine again
        llm.script(marker, {"content": GOOD})
    again = client.post("/predict", json={"tasks": [t for t, m in zip(tasks, markers, strict=True)
                                                    if m != "good"],
                                          "label_config": FULL_CONFIG}).get_json()["results"]
    assert all(again) and len(again) == 4


def test_tasks_not_started_by_the_deadline_are_dropped_not_run_late(llm: FakeLLM,
                                                                     llm_backend) -> None:
    """Four hanging tasks hold the four judge threads past the budget: the six queued
    behind them are never sent to the provider."""
    llm.script("hang", {"mode": "hang"})
    tasks = [_task(i, "hang" if i < 4 else "later") for i in range(10)]
    client = llm_backend.test_client()
    started = time.monotonic()
    results = client.post("/predict", json={"tasks": tasks, "label_config": FULL_CONFIG}
                          ).get_json()["results"]
    assert time.monotonic() - started < 2.8
    assert results == [[]] * 10
    time.sleep(0.3)
    assert "later" not in llm.stats()["by_marker"]
    assert client.get("/metrics").get_json()["tasks_without_prediction"] == 10


def test_predict_slots_answer_not_now_at_once_when_full(monkeypatch, tmp_path) -> None:
    """With every predict slot judging, one more /predict is answered at once, with no
    predictions, instead of taking a thread for as long as the judge needs."""
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PREDICT_SLOTS", "1")
    gate = threading.Event()
    release = threading.Event()

    class Slow:
        name = "slow"
        version = "1"

        def judge(self, task_data):
            gate.set()
            release.wait(5)
            return None

    slow_app = create_app(judge=Slow())
    slow = slow_app.test_client()
    config = DEFAULT_XML.read_text(encoding="utf-8")
    worker = threading.Thread(target=lambda: slow.post("/predict", json={
        "tasks": [{"id": 1, "data": {"answer": "x"}}], "label_config": config}))
    worker.start()
    assert gate.wait(5)
    started = time.monotonic()
    busy = slow.post("/predict", json={"tasks": [{"id": 2, "data": {"answer": "y"}}],
                                       "label_config": config})
    assert time.monotonic() - started < 0.5
    assert busy.status_code == 200 and busy.get_json()["results"] == [[]]
    release.set()
    worker.join(5)
    assert slow.get("/metrics").get_json()["predicts_busy"] == 1


# Broken files degrade, never a 500 ------------------------------------------------------

def test_a_corrupt_judge_cache_file_degrades_to_no_cache(llm: FakeLLM, llm_backend,
                                                        tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "broken-cache.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("LS_LLMTRACE_JUDGE_CACHE", str(cache))
    client = create_app().test_client()
    response = client.post("/predict", json={"tasks": [_task(1, "good")],
                                             "label_config": FULL_CONFIG})
    assert response.status_code == 200
    assert response.get_json()["results"][0]  # the LLM answered, without the cache
    metrics = client.get("/metrics").get_json()
    assert "judge_cache" in metrics["degraded"]
    assert metrics["degraded_judge_cache"] >= 1


def test_a_corrupt_learned_state_file_degrades_to_the_rule_judge(tmp_path: Path,
                                                                 monkeypatch) -> None:
    from ls_llmtrace.judging.judges.learned import TextModel, example_from_task

    home = tmp_path / "home"
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(home))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("LS_LLMTRACE_JUDGE", "learned")
    monkeypatch.delenv("LS_LLMTRACE_LLM_BASE_URL", raising=False)
    learned = home / "learned"
    learned.mkdir(parents=True)
    import joblib

    model = TextModel().fit([example_from_task({"answer": f"{a} answer", "messages": [
        {"role": "user", "content": f"question {a}"}]}) for a in ("good", "bad") * 3],
                            ["pass", "fail"] * 3)
    joblib.dump(model, learned / "default.v1.joblib")
    (learned / "default.v1.json").write_text(json.dumps({"version": "seven"}))
    config = DEFAULT_XML.read_text(encoding="utf-8")
    client = create_app().test_client()
    response = client.post("/predict", json={
        "tasks": [{"id": 1, "data": {"trace_id": "t1", "answer": ""}}], "label_config": config})
    assert response.status_code == 200
    [prediction] = response.get_json()["results"]
    assert prediction["model_version"].startswith("llmtrace-rules-v1")
    assert "learned" in client.get("/metrics").get_json()["degraded"]


# Closed by default -------------------------------------------------------------------

def test_the_backend_refuses_to_start_without_credentials(monkeypatch) -> None:
    monkeypatch.delenv("LS_LLMTRACE_BACKEND_OPEN", raising=False)
    with pytest.raises(ConfigError, match="LS_LLMTRACE_BACKEND_USER"):
        create_app()


def test_running_open_needs_the_setting_and_logs_a_warning(monkeypatch, caplog) -> None:
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_OPEN", "1")
    with caplog.at_level(logging.WARNING, logger="ls_llmtrace.backend"):
        client = create_app().test_client()
    assert "runs OPEN" in caplog.text
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("env", [
    {"LS_LLMTRACE_BACKEND_USER": "ls", "LS_LLMTRACE_BACKEND_PASSWORD": "pw"},
    {"LS_LLMTRACE_BACKEND_TOKEN": "tok"},
])
def test_with_credentials_it_starts_closed(monkeypatch, env) -> None:
    monkeypatch.delenv("LS_LLMTRACE_BACKEND_OPEN", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = create_app().test_client()
    assert client.get("/health").status_code == 401
    assert client.post("/predict", json={"tasks": []}).status_code == 401


def test_credentials_removed_at_runtime_do_not_open_it(monkeypatch) -> None:
    monkeypatch.delenv("LS_LLMTRACE_BACKEND_OPEN", raising=False)
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_TOKEN", "tok")
    client = create_app().test_client()
    monkeypatch.delenv("LS_LLMTRACE_BACKEND_TOKEN")
    assert client.post("/predict", json={"tasks": []}).status_code == 401


# Request bodies ----------------------------------------------------------------------

@pytest.fixture()
def open_client(tmp_path, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    return create_app().test_client()


@pytest.mark.parametrize("body", [b"{not json", b'{"tasks": [', b"\xff\xfe{}", b"[1, 2"])
def test_malformed_json_is_a_400_not_an_empty_object(open_client, body: bytes) -> None:
    for route in ("/predict", "/setup", "/webhook"):
        response = open_client.post(route, data=body, content_type="application/json")
        assert response.status_code == 400, (route, body)
        assert "not JSON" in response.get_json()["error"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000, 200_000])
def test_too_deeply_nested_json_is_a_400(open_client, depth: int) -> None:
    body = '{"tasks": ' + "[" * depth + "]" * depth + "}"
    response = open_client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "deeper than" in response.get_json()["error"]


def test_json_a_little_nested_is_fine(open_client) -> None:
    nested: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 6):
        nested = {"k": nested}
    task = {"id": 1, "data": {"answer": "fine", "metadata": nested}}
    response = open_client.post("/predict", json={"tasks": [task],
                                                  "label_config": DEFAULT_XML.read_text()})
    assert response.status_code == 200


def test_json_depth_helper() -> None:
    assert not json_depth_over({"a": [1, {"b": 2}]}, 3)
    assert json_depth_over({"a": [1, {"b": [3]}]}, 3)
    assert not json_depth_over("text", 0)


def test_an_empty_body_is_an_empty_object_and_a_list_is_refused(open_client) -> None:
    assert open_client.post("/setup", data=b"").status_code == 200
    listed = open_client.post("/predict", data=b"[]", content_type="application/json")
    assert listed.status_code == 400


def test_a_chunked_body_over_the_limit_is_a_413(open_client, monkeypatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_MAX_REQUEST_MB", "0.001")
    body = json.dumps({"tasks": [{"id": 1, "data": {"answer": "x" * 5000}}]}).encode()
    response = open_client.post("/predict", input_stream=io.BytesIO(body),
                                headers={"Transfer-Encoding": "chunked",
                                         "Content-Type": "application/json"},
                                environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413, response.get_json()
    assert "error" in response.get_json()


def test_a_chunked_body_the_server_cannot_delimit_is_refused(open_client) -> None:
    response = open_client.post("/predict", data=b'{"tasks": []}',
                                headers={"Transfer-Encoding": "chunked",
                                         "Content-Type": "application/json"})
    assert response.status_code in (400, 411)
