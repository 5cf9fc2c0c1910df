"""Feedback items stand alone: one the client got wrong is rejected with its reason, the
rest of its request or file is written, and everything written reads back. The API answers
JSON whatever happens, and stops reading at its body limit (a chunked body too).

Before, each bad item below aborted the transaction: the good items of the same request
were lost and the API answered an HTML 500; a 220-deep metadata item was stored and then
broke ``ls-llmtrace records`` for everyone.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.records.feedback import ingest, load_mapping, read_feedback_file
from ls_llmtrace.records.feedbackapi import create_app
from ls_llmtrace.store import Store

from .paths import LABEL_CONFIGS

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"channel": "thumbs", "trace_id": "t-good", "value": "down", "id": "good"}


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": value}
    return value


BAD = {
    "model_version not a string": {"channel": "thumbs", "trace_id": "t1", "value": "up",
                                   "metadata": {"model_version": 7}},
    "model_version a mapping": {"channel": "qa", "trace_id": "t1", "score": 3,
                                "metadata": {"model_version": {"a": 1}}},
    "year 1 with an offset": {"channel": "thumbs", "trace_id": "t2", "value": "up",
                              "created_at": "0001-01-01T00:00:00+05:00"},
    "lone surrogate": {"channel": "thumbs", "trace_id": "t3", "value": "up",
                       "comment": "bad \ud800 text"},
    "metadata 220 deep": {"channel": "thumbs", "trace_id": "t4", "value": "up",
                          "metadata": _deep(220)},
    "surrogate key": {"channel": "evaluator", "trace_id": "t5", "evaluator": "g",
                      "score": 0.5, "metadata": {"\udc80": 1}},
}
REASONS = {"model_version not a string": "metadata.model_version",
           "model_version a mapping": "metadata.model_version",
           "year 1 with an offset": "created_at", "lone surrogate": "surrogate",
           "metadata 220 deep": "LS_LLMTRACE_STORED_MAX_DEPTH", "surrogate key": "surrogate"}


@pytest.fixture()
def app(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_TOKEN", TOKEN)
    return create_app(store_url, schemas_dir=LABEL_CONFIGS, sync_runner=lambda _: None)


def _post(client: Any, items: Any) -> Any:
    # json.dumps keeps a lone surrogate as its escape, as any client would send it
    return client.post("/feedback", headers={**AUTH, "Content-Type": "application/json"},
                       data=json.dumps(items))


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_item_is_rejected_and_the_rest_written(app: Any, store_url: str,
                                                     name: str) -> None:
    reply = _post(app.test_client(), [GOOD, BAD[name], {**GOOD, "id": "good-2"}])
    assert reply.status_code == 200 and reply.is_json
    body = reply.get_json()
    assert body["ids"][0] == "thumbs:id:good" and body["ids"][1] is None
    assert body["ids"][2] == "thumbs:id:good-2"
    [rejected] = body["rejected"]
    assert rejected["index"] == 1 and REASONS[name] in rejected["reason"], rejected
    with Store(store_url) as store:
        assert sorted(r.record_key for r in store.records()) == ["thumbs:id:good",
                                                                 "thumbs:id:good-2"]
        kept = store.rejected_feedback()
        assert len(kept) == 1 and REASONS[name] in kept[0]["reason"]


def test_a_file_with_bad_lines_writes_the_good_ones(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    lines = [json.dumps(GOOD)] + [json.dumps(item) for item in BAD.values()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Store(store_url) as store:
        result = ingest(store, read_feedback_file(path), load_mapping())
        assert result.written == 1 and len(result.rejected) == len(BAD)
        assert [r.location for r in result.rejected] == [str(n) for n in range(2, 8)]
        assert [r.record_key for r in store.records()] == ["thumbs:id:good"]


def test_errors_are_json(app: Any) -> None:
    client = app.test_client()
    for reply, status in ((client.get("/nope"), 404), (client.get("/feedback"), 405),
                          (client.post("/feedback", headers=AUTH, data="{not json"), 400),
                          (client.post("/feedback", headers=AUTH, data="[" * 100_000), 400),
                          (client.post("/feedback", headers=AUTH, data=b"\xff\xfe"), 400),
                          (client.post("/feedback", headers=AUTH, data=""), 400)):
        assert reply.status_code == status and reply.is_json, (status, reply.data[:200])
        assert reply.get_json()["error"]


def test_a_broken_store_is_a_json_500(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_TOKEN", TOKEN)
    not_a_db = tmp_path / "store.sqlite"
    not_a_db.write_bytes(b"this is not a database" * 100)
    app = create_app(f"sqlite:///{not_a_db}", schemas_dir=LABEL_CONFIGS,
                     sync_runner=lambda _: None)
    reply = _post(app.test_client(), [GOOD])
    assert reply.status_code == 500 and reply.is_json and reply.get_json()["error"]


@pytest.fixture()
def served(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Feedback API on a real loopback HTTP server, with a 64 KB body limit."""
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_TOKEN", TOKEN)
    monkeypatch.setenv("LS_LLMTRACE_FEEDBACK_MAX_BODY_MB", str(64 / 1024))
    app = create_app(store_url, schemas_dir=LABEL_CONFIGS, sync_runner=lambda _: None)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_body_limit_holds_for_chunked_bodies(served: str, store_url: str) -> None:
    item = json.dumps({**GOOD, "comment": "x" * 1000}).encode()
    big = b"[" + b",".join([item] * 100) + b"]"  # ~100 KB

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    headers = {**AUTH, "Content-Type": "application/json"}
    for data in (big, chunks()):  # with Content-Length, then chunked (no length)
        reply = requests.post(f"{served}/feedback", headers=headers, data=data, timeout=30)
        assert reply.status_code == 413, reply.text[:200]
        assert "LS_LLMTRACE_FEEDBACK_MAX_BODY_MB" in reply.json()["error"]
    small = requests.post(f"{served}/feedback", headers=headers, data=iter([item]), timeout=30)
    assert small.status_code == 200 and small.json()["ids"] == ["thumbs:id:good"]
    with Store(store_url) as store:
        assert [r.record_key for r in store.records()] == ["thumbs:id:good"]


# --- property: whatever the items hold, ingest never raises and what it writes reads back

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))  # more under `make stress`
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(codec=None, exclude_categories=()), max_size=10)
           | st.sampled_from(["up", "down", "thumbs", "qa", "support", "evaluator", "t1",
                              "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                              "2025-06-01T10:00:00Z", "\ud800"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=10)
FIELDS = ["trace_id", "id", "span_id", "created_at", "model_version", "product_area",
          "user_segment", "metadata", "value", "comment", "user_id", "ticket_id", "category",
          "severity", "summary", "agent", "score", "notes", "reviewer", "label", "evaluator",
          "evaluator_version", "explanation"]
items = st.one_of(
    json_values,
    st.builds(lambda channel, fields, deep: {"channel": channel, "trace_id": "t1", **fields,
                                             **({"metadata": _deep(deep)} if deep else {})},
              st.sampled_from(["thumbs", "support", "qa", "evaluator"]) | json_values,
              st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
              st.sampled_from([0, 0, 0, 40, 250])),
)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=st.lists(items, min_size=1, max_size=5))
def test_ingest_never_loses_a_batch(store: Store, batch: list[Any]) -> None:
    result = ingest(store, ((f"request:{i}", item) for i, item in enumerate(batch)),
                    load_mapping())
    assert len(result.ids) == len(batch)
    assert sum(i is not None for i in result.ids) + len(result.rejected) == len(batch)
    for record in store.records(include_deleted=True):  # every stored body reads back
        assert isinstance(record, AnnotationRecord)
    store.rejected_feedback()
