"""The near-real-time path against a real Label Studio: a project webhook (with the shared
secret header) reaches the Feedback API over HTTP and triggers a sync of that project."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import free_port
from ls_llmtrace.models import Trace
from ls_llmtrace.records.feedbackapi import create_app
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SECRET = "webhook-secret-1"
TOKEN = "feedback-token-1"


@pytest.fixture()
def feedback_server(ls_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LS_LLMTRACE_SYNC_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_TOKEN", TOKEN)
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(schemas_dir=REPO / "label_configs"),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)


def _wait_for(check, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_webhook_triggers_sync_and_feedback_posts(ls_client: LabelStudioClient,
                                                  feedback_server: str, ls_env: Path) -> None:
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    with Store() as store:
        pid = import_traces(ls_client, store, [Trace(trace_id="hook-1", output="x."),
                                               Trace(trace_id="hook-2", output="y.")],
                            queue="webhook", schema=schema).project_id
    tasks = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}
    ls_client.sdk.webhooks.create(
        url=f"{feedback_server}/ls-webhook", project=pid, send_payload=True,
        send_for_all_actions=False, headers={"X-LLMTrace-Secret": SECRET},
        actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"])
    ls_client.sdk.annotations.create(id=tasks["hook-1"], result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}}])

    def synced() -> bool:
        with Store() as store:
            return [(r.trace_id, r.label) for r in store.records()] == [("hook-1", "fail")]

    assert _wait_for(synced), "the webhook did not trigger a sync"

    # a thumbs-down for the other trace over HTTP lands beside the reviewer's record
    reply = requests.post(f"{feedback_server}/feedback", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"channel": "thumbs", "trace_id": "hook-2", "value": "down",
                                "user_id": "u-1"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["ids"] == ["thumbs:hook-2::u-1"]
    wrong = requests.post(f"{feedback_server}/ls-webhook", timeout=10,
                          json={"project": {"id": pid}})
    assert wrong.status_code == 401
    with Store() as store:
        assert sorted((r.trace_id, r.source.value) for r in store.records()) == \
            [("hook-1", "reviewer"), ("hook-2", "end_user")]
