"""mlbackend.py: Label Studio's ML-backend protocol through Flask's test client."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ls_llmtrace.judging.backend import WEBHOOK_SECRET_HEADER, create_app, model_version
from ls_llmtrace.judging.judges import RuleJudge, Verdict
from ls_llmtrace.schema.labelconfig import build_label_config
from ls_llmtrace.schema.model import parse_schema

from .paths import DEFAULT_XML

CONFIG = DEFAULT_XML.read_text(encoding="utf-8")
VERSION = "llmtrace-rules-v1@default@v1"
NO_VERDICT_CONFIG = """<View>
  <Text name="answer" value="$answer"/>
  <TextArea name="explanation" toName="answer"/>
</View>"""
GOOD_BAD_SCHEMA = """\
id: tone
version: 4
owner: o@example.com
fields:
  - type: label
    values: [good, bad]
    failing: [bad]
"""

TASKS = [
    {"id": 1, "data": {"trace_id": "t1", "answer": ""}},
    {"id": 2, "data": {"trace_id": "t2", "answer": "The weather in Paris is rainy and 57°F."}},
]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """The backend's store, cache and models live in a temp home; no LLM configured."""
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    for name in ("LS_LLMTRACE_LLM_BASE_URL", "LS_LLMTRACE_JUDGE", "LS_LLMTRACE_LS_TOKEN",
                 "LS_LLMTRACE_BACKEND_TOKEN", "LS_LLMTRACE_JUDGE_CACHE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def client():
    return create_app().test_client()


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "UP"


def test_setup_returns_model_version(client):
    response = client.post("/setup", json={"project": "1.1700000000", "schema": CONFIG})
    assert response.status_code == 200
    version = response.get_json()["model_version"]
    assert "default@v1" in version
    assert "llmtrace-rules-v1" in version
    assert version == VERSION


def test_predict_two_tasks_in_order(client):
    setup_version = client.post("/setup", json={"schema": CONFIG}).get_json()["model_version"]
    response = client.post("/predict", json={"tasks": TASKS, "label_config": CONFIG})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == setup_version
    results = body["results"]
    assert len(results) == 2
    for prediction in results:
        assert prediction["model_version"] == setup_version
        assert [r["from_name"] for r in prediction["result"]] == ["verdict", "score",
                                                                   "judge_explanation"]
        assert {r["to_name"] for r in prediction["result"]} == {"answer"}
        assert [r["type"] for r in prediction["result"]] == ["choices", "number", "textarea"]
        assert 0.0 <= prediction["score"] <= 1.0
    # order: the empty answer (task 1) fails, the good sentence (task 2) passes
    assert results[0]["result"][0]["value"] == {"choices": ["fail"]}
    assert results[1]["result"][0]["value"] == {"choices": ["pass"]}
    assert results[0]["result"][1]["value"] == {"number": 0.0}
    assert results[0]["result"][2]["value"]["text"][0] == f"Judge {setup_version}:"
    assert "empty" in results[0]["result"][2]["value"]["text"][1]


def test_predict_uses_setup_config_when_none_sent(client):
    client.post("/setup", json={"schema": CONFIG})
    body = client.post("/predict", json={"tasks": TASKS[:1]}).get_json()
    assert body["model_version"] == VERSION
    assert body["results"][0]["result"][0]["from_name"] == "verdict"


def test_predict_without_verdict_control_gives_no_predictions(client):
    body = client.post("/predict", json={"tasks": TASKS,
                                         "label_config": NO_VERDICT_CONFIG}).get_json()
    # one entry per task keeps the batch aligned; an empty list makes Label Studio store
    # nothing for the task (an empty result would mark it as predicted for good)
    assert body["results"] == [[], []]
    assert body["model_version"].endswith("@unknown-schema")


def test_predict_only_controls_in_config():
    schema = parse_schema(GOOD_BAD_SCHEMA, "tone.yaml")
    app = create_app()
    c = app.test_client()
    config = build_label_config(schema)
    body = c.post("/predict", json={"tasks": TASKS, "label_config": config}).get_json()
    assert body["model_version"] == "llmtrace-rules-v1@tone@v4"
    assert [r["result"][0]["value"]["choices"] for r in body["results"]] == [["bad"], ["good"]]
    # no score or reviewer's explanation controls: the verdict and the judge's own words
    assert all([x["from_name"] for x in r["result"]] == ["verdict", "judge_explanation"]
               for r in body["results"])
    assert all(r["result"][1]["value"]["text"][0] == "Judge llmtrace-rules-v1@tone@v4:"
               for r in body["results"])


def test_one_failing_task_keeps_the_batch_aligned():
    class Flaky:
        name = "flaky"
        version = "7"

        def judge(self, data: dict[str, Any]) -> Verdict | None:
            if data.get("trace_id") == "t1":
                raise RuntimeError("model down")
            return Verdict("pass", 1.0, "ok", 0.8)

    c = create_app(judge=Flaky()).test_client()
    body = c.post("/predict", json={"tasks": TASKS, "label_config": CONFIG}).get_json()
    assert body["model_version"] == "flaky-v7@default@v1"
    assert body["results"][0] == []
    assert body["results"][1]["result"][0]["value"] == {"choices": ["pass"]}
    metrics = c.get("/metrics").get_json()
    assert metrics["failures"] == 1 and metrics["predictions"] == 1


def test_versions(client):
    client.post("/setup", json={"schema": CONFIG})
    response = client.get("/versions")
    assert response.status_code == 200
    assert response.get_json() == {"versions": [VERSION]}


def test_metrics_count_predictions(client):
    client.post("/predict", json={"tasks": TASKS, "label_config": CONFIG})
    client.post("/predict", json={"tasks": TASKS[:1], "label_config": CONFIG})
    client.post("/predict", json={"tasks": TASKS, "label_config": NO_VERDICT_CONFIG})
    metrics = client.get("/metrics").get_json()
    assert metrics["predictions"] == 3
    assert metrics["tasks_without_prediction"] == 2
    assert metrics["requests"] == 4  # including this /metrics request


def test_basic_auth_required_when_configured(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", "ls")
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", "s3cret")
    for method, path in [("get", "/health"), ("post", "/setup"), ("post", "/predict"),
                         ("get", "/versions"), ("get", "/metrics")]:
        response = getattr(client, method)(path, json={})
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/health", headers=_basic("ls", "wrong")).status_code == 401
    assert client.get("/health", headers=_basic("other", "s3cret")).status_code == 401
    assert client.get("/health", headers=_basic("ls", "s3cret")).status_code == 200
    response = client.post("/predict", json={"tasks": TASKS, "label_config": CONFIG},
                           headers=_basic("ls", "s3cret"))
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == 2
    assert client.get("/metrics", headers=_basic("ls", "s3cret")).get_json()[
        "auth_failures"] == 7


def test_no_auth_needed_when_not_configured(client):
    assert client.get("/health").status_code == 200


def test_non_ascii_password_works(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", "ls")
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", "pässwörd")
    assert client.get("/health", headers=_basic("ls", "wrong")).status_code == 401
    assert client.get("/health", headers=_basic("ls", "pässwörd")).status_code == 200


def test_webhook_secret_required_when_configured(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_WEBHOOK_SECRET", "hook-secret")
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 401
    wrong = client.post("/webhook", json={"action": "ANNOTATION_CREATED"},
                        headers={WEBHOOK_SECRET_HEADER: "nope"})
    assert wrong.status_code == 401
    ok = client.post("/webhook", json={"action": "ANNOTATION_CREATED"},
                     headers={WEBHOOK_SECRET_HEADER: "hook-secret"})
    assert ok.status_code == 200
    assert ok.get_json()["status"] == "ok"
    metrics = client.get("/metrics").get_json()
    assert metrics["webhook_annotation_created"] == 1
    assert metrics["auth_failures"] == 2


def test_webhook_open_without_secret(client):
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED"}).status_code == 200
    assert client.get("/metrics").get_json()["webhook_project_updated"] == 1


def test_500_body_has_no_traceback():
    class Broken:
        name = "broken"

        @property
        def version(self) -> str:
            raise RuntimeError("secret internals /srv/app/judge.py line 42")

        def judge(self, data: dict[str, Any]) -> Verdict | None:
            return None

    c = create_app(judge=Broken()).test_client()
    response = c.post("/setup", json={"schema": CONFIG})
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "secret internals" not in text
    assert "RuntimeError" not in text
    assert response.get_json() == {"error": "internal error (see the backend log)"}
    assert c.get("/metrics").get_json()["failures"] == 1


def test_bad_label_config_body_has_no_traceback(client):
    response = client.post("/predict", json={"tasks": TASKS, "label_config": "<View><oops"})
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "ParseError" not in text
    assert "error" in response.get_json()


def test_bad_label_config_gets_an_http_error_status(client):
    response = client.post("/predict", json={"tasks": TASKS, "label_config": "<View><oops"})
    assert response.status_code in (400, 422, 500)


def test_unknown_route_and_method(client):
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert "error" in missing.get_json()
    assert client.get("/predict").status_code == 405


def test_model_version_helper():
    assert model_version(RuleJudge(), CONFIG) == VERSION
    assert model_version(RuleJudge(), None) == "llmtrace-rules-v1@unknown-schema"


def test_judge_follows_the_config_of_each_request(client):
    client.post("/setup", json={"schema": CONFIG})  # pass/fail project first
    config = build_label_config(parse_schema(GOOD_BAD_SCHEMA, "tone.yaml"))
    body = client.post("/predict", json={"tasks": TASKS, "label_config": config}).get_json()
    assert [r["result"][0]["value"]["choices"] for r in body["results"] if r["result"]] == [
        ["bad"], ["good"]]


def test_non_ascii_webhook_header_is_refused_not_crashed(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_WEBHOOK_SECRET", "hook-secret")
    response = client.post("/webhook", json={}, headers={WEBHOOK_SECRET_HEADER: "s\u00e9cret"})
    assert response.status_code == 401


def test_latin1_encoded_password_from_python_requests_works(client, monkeypatch):
    """Label Studio calls the backend with `requests`, which encodes basic auth as Latin-1."""
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", "ls")
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", "pässwörd")
    token = base64.b64encode("ls:pässwörd".encode("latin-1")).decode()
    assert client.get("/health", headers={"Authorization": f"Basic {token}"}).status_code == 200
    assert client.get("/health", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_bearer_token_accepted_when_configured(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_TOKEN", "tok-123")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer tok-123"})
    assert ok.status_code == 200


def test_request_size_limit(client, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_MAX_REQUEST_MB", "0.001")
    response = client.post("/predict", data=b"{" + b" " * 5000 + b"}",
                           content_type="application/json")
    assert response.status_code == 413
    assert "Traceback" not in response.get_data(as_text=True)
