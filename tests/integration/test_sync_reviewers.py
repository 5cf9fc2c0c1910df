"""The sync against a real Label Studio: two reviewers on the same tasks, cancelled and
ground-truth annotations, every result type of schema v1, edits, deleted annotations and
deleted tasks. The synced records are compared whole, and a second sync changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Trace, TraceMetadata
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]


def _result(name: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"from_name": name, "to_name": "answer", "type": kind, "value": value}


def _full(verdict: str, score: float, why: str, fixed: str | None = None) -> list[dict[str, Any]]:
    out = [_result("verdict", "choices", {"choices": [verdict]}),
           _result("score", "number", {"number": score}),
           _result("explanation", "textarea", {"text": [why]})]
    if fixed is not None:
        out.append(_result("corrected_output", "textarea", {"text": [fixed]}))
    return out


def _facts(store: Store, include_deleted: bool = False) -> set[tuple[Any, ...]]:
    return {(r.trace_id, r.author, r.label, r.score, r.explanation, r.corrected_output,
             r.was_cancelled, r.ground_truth, r.lead_time_s, r.deleted,
             r.ls_annotation_id is not None, r.ls_task_id is not None)
            for r in store.records(include_deleted=include_deleted)}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def test_two_reviewers_cancelled_edits_and_deletions(ls_client: LabelStudioClient,
                                                     store_url: str) -> None:
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    schemas = {(schema.id, schema.version): schema}
    store = Store(store_url)
    traces = [Trace(trace_id=f"rev-{i}", output=f"answer {i}.",
                    metadata=TraceMetadata(model_version="m-1")) for i in range(6)]
    queue = f"reviewers-{store.dialect}"
    pid = import_traces(ls_client, store, traces, queue=queue, schema=schema).project_id
    task = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}

    # A second reviewer. Label Studio Community creates users through the API; the
    # annotation is attributed to them with completed_by (the token is the admin's).
    admin = ls_client.sdk.users.whoami()
    email = f"rev2-{uuid.uuid4().hex[:8]}@example.com"
    second = ls_client.sdk.users.create(username=email.split("@")[0], email=email)
    create = ls_client.sdk.annotations.create

    a_admin = create(id=task["rev-0"], result=_full("fail", 0.2, "cut off", "full answer"),
                     lead_time=41.5)
    a_second = create(id=task["rev-0"], result=_full("pass", 0.9, "fine by me"),
                      completed_by=second.id, lead_time=12.0)
    create(id=task["rev-1"], result=[], was_cancelled=True, completed_by=second.id,
           lead_time=3.0)
    create(id=task["rev-1"], result=_full("pass", 1.0, "correct"), ground_truth=True,
           lead_time=7.25)
    a_gone_task = create(id=task["rev-2"], result=_full("fail", 0.0, "wrong"), lead_time=5.0)

    [first] = sync_all(ls_client, store, schemas, [pid])
    assert (first.tasks_seen, first.records_written, first.rejected) == (6, 5, 0)
    expected = {
        ("rev-0", admin.email, "fail", 0.2, "cut off", "full answer", False, False, 41.5,
         False, True, True),
        ("rev-0", email, "pass", 0.9, "fine by me", None, False, False, 12.0, False, True, True),
        ("rev-1", email, None, None, None, None, True, False, 3.0, False, True, True),
        ("rev-1", admin.email, "pass", 1.0, "correct", None, False, True, 7.25, False, True,
         True),
        ("rev-2", admin.email, "fail", 0.0, "wrong", None, False, False, 5.0, False, True, True),
    }
    assert _facts(store) == expected
    by_key = {r.record_key: r for r in store.records()}
    assert by_key[f"ls:{pid}:{a_admin.id}"].ls_task_id == task["rev-0"]
    assert by_key[f"ls:{pid}:{a_second.id}"].ls_project_id == pid
    assert all(r.created_at and r.updated_at for r in by_key.values())

    [idle] = sync_all(ls_client, store, schemas, [pid])
    assert (idle.tasks_seen, idle.records_written, idle.records_deleted, idle.requests) == \
        (0, 0, 0, 2)

    # An edit by the second reviewer, a deleted annotation, a deleted task.
    ls_client.sdk.annotations.update(id=a_second.id, result=_full("fail", 0.3, "missed a case"))
    ls_client.sdk.annotations.delete(id=a_admin.id)
    ls_client.sdk.tasks.delete(id=str(task["rev-2"]))
    [changes] = sync_all(ls_client, store, schemas, [pid])
    assert (changes.records_written, changes.records_deleted, changes.tasks_deleted) == (1, 2, 1)
    live = {f for f in expected if f[0] != "rev-2" and f[4] != "cut off" and f[1] != email}
    live |= {("rev-0", email, "fail", 0.3, "missed a case", None, False, False, 12.0, False,
              True, True),
             ("rev-1", email, None, None, None, None, True, False, 3.0, False, True, True)}
    assert _facts(store) == live
    deleted = {r.record_key for r in store.records(include_deleted=True) if r.deleted}
    assert deleted == {f"ls:{pid}:{a_admin.id}", f"ls:{pid}:{a_gone_task.id}"}
    assert "rev-2" not in store.known_trace_ids(pid)  # re-importing it makes a new task

    before = _facts(store, include_deleted=True)
    [idle] = sync_all(ls_client, store, schemas, [pid])
    assert (idle.tasks_seen, idle.records_written, idle.records_deleted, idle.requests) == \
        (0, 0, 0, 2)
    assert _facts(store, include_deleted=True) == before
    # the same state through the stats query (reviewer failure rate among live records)
    facts = [f for f in store.record_facts() if f["source"] == "reviewer"]
    assert sorted((str(f["label"]), f["model_version"]) for f in facts) == \
        [("None", "m-1"), ("fail", "m-1"), ("pass", "m-1")]
    store.close()
