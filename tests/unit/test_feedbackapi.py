"""feedbackapi.py: POST /feedback (single, batch, token, idempotent ids) and the
secret-protected Label Studio webhook that triggers a sync."""

from __future__ import annotations

import threading

import pytest

from ls_llmtrace.models import Source
from ls_llmtrace.records.feedbackapi import SyncTrigger, create_app
from ls_llmtrace.store import Store

from .paths import LABEL_CONFIGS

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def synced() -> list[int]:
    return []


@pytest.fixture()
def app(store_url, monkeypatch, synced):
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_TOKEN", TOKEN)
    monkeypatch.setenv("LS_LLMTRACE_SYNC_WEBHOOK_SECRET", "hook")
    return create_app(store_url, schemas_dir=LABEL_CONFIGS, sync_runner=synced.append)


def test_single_and_batch_return_ids_in_order(app, store_url):
    client = app.test_client()
    one = client.post("/feedback", headers=AUTH, json={
        "channel": "thumbs", "trace_id": "t1", "value": "down", "id": "fb-1"})
    assert one.status_code == 200
    assert one.get_json()["ids"] == ["thumbs:id:fb-1"]
    batch = [
        {"channel": "thumbs", "trace_id": "t1", "value": "down", "id": "fb-1"},
        {"channel": "support", "trace_id": "t2", "ticket_id": "T-5", "category": "unsafe",
         "severity": "critical"},
        {"channel": "qa", "trace_id": "t3", "score": 5},
        {"channel": "evaluator", "trace_id": "t3", "evaluator": "groundedness", "score": 0.1},
        {"channel": "thumbs", "trace_id": "t4", "value": "maybe"},
    ]
    reply = client.post("/feedback", headers=AUTH, json={"items": batch})
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["ids"][0] == "thumbs:id:fb-1"
    assert body["ids"][1] == "support:T-5:t2"
    assert body["ids"][2].startswith("qa:t3::") and body["ids"][3].startswith("evaluator:")
    assert body["ids"][4] is None
    assert (body["written"], body["unchanged"]) == (3, 1)
    assert body["rejected"][0]["index"] == 4 and "value" in body["rejected"][0]["reason"]
    again = client.post("/feedback", headers=AUTH, json=batch).get_json()
    assert again["ids"] == body["ids"] and again["written"] == 0
    with Store(store_url) as store:
        sources = sorted(r.source.value for r in store.records())
        assert sources == ["end_user", "evaluator", "qa", "support"]
        assert store.records(source=Source.support.value)[0].score == 0.0
        assert len(store.rejected_feedback()) == 1


def test_auth_and_bad_bodies(app, monkeypatch):
    client = app.test_client()
    item = {"channel": "thumbs", "trace_id": "t1", "value": "up"}
    assert client.post("/feedback", json=item).status_code == 401
    wrong = client.post("/feedback", json=item, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "bearer token" in wrong.get_json()["error"]
    assert client.post("/feedback", headers=AUTH, data="not json",
                       content_type="application/json").status_code == 400
    assert client.post("/feedback", headers=AUTH, json=[]).status_code == 400
    none_ok = client.post("/feedback", headers=AUTH, json=[{"channel": "thumbs"}])
    assert none_ok.status_code == 422 and none_ok.get_json()["ids"] == [None]
    monkeypatch.delenv("LS_LLMTRACE_FEEDBACK_TOKEN")  # read per request
    off = client.post("/feedback", headers=AUTH, json=item)
    assert off.status_code == 503 and "LS_LLMTRACE_FEEDBACK_TOKEN" in off.get_json()["error"]
    assert client.get("/health").get_json() == {"status": "UP"}


def test_webhook_needs_secret_and_triggers_sync(app, synced, monkeypatch):
    client = app.test_client()
    payload = {"action": "ANNOTATION_CREATED", "project": {"id": 12}}
    assert client.post("/ls-webhook", json=payload).status_code == 401
    bad = client.post("/ls-webhook", json=payload, headers={"X-LLMTrace-Secret": "no"})
    assert bad.status_code == 401
    ok = client.post("/ls-webhook", json=payload, headers={"X-LLMTrace-Secret": "hook"})
    assert ok.status_code == 202
    app.extensions["llmtrace_sync"].wait()
    assert synced == [12]
    assert client.post("/ls-webhook", json={"action": "X"},
                       headers={"X-LLMTrace-Secret": "hook"}).status_code == 400
    monkeypatch.delenv("LS_LLMTRACE_SYNC_WEBHOOK_SECRET")
    assert client.post("/ls-webhook", json=payload,
                       headers={"X-LLMTrace-Secret": "hook"}).status_code == 503


def test_sync_trigger_coalesces_and_survives_failures():
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def run(project_id: int) -> None:
        runs.append(project_id)
        if len(runs) == 1:
            started.set()
            release.wait(5)
            raise RuntimeError("Label Studio went away")

    trigger = SyncTrigger(run)
    trigger.request(1)
    assert started.wait(5)
    for _ in range(5):  # arrive while the first sync runs: one more run, not five
        trigger.request(1)
    release.set()
    trigger.wait(5)
    assert runs == [1, 1]
    assert (trigger.runs, trigger.failures) == (1, 1)
