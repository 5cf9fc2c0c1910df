"""A review queue's Data Manager tab against a real Label Studio: the columns reviewers
filter by (trace id, model and version, product area, user segment, latency, end-user
thumbs, why the trace is in the queue, the judge's verdict and score) exist, the tab is
made once, and Label Studio filters on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.queues import REVIEW_COLUMNS, REVIEW_VIEW
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.ingest.rules import parse_rules
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Trace
from ls_llmtrace.records.feedback import ingest, load_mapping
from ls_llmtrace.store import Store

RULES = parse_rules("queues:\n  - name: dm-cols\n"
                    "    triggers: {thumbs_down: true, latency_ms_over: 10000}\n")


def _trace(trace_id: str, latency: float, area: str, segment: str, version: str) -> Trace:
    return Trace.model_validate({
        "trace_id": trace_id, "output": f"answer {trace_id}",
        "messages": [{"role": "user", "content": "question"}],
        "metadata": {"model": "gpt-x", "model_version": version, "product_area": area,
                     "user_segment": segment, "latency_ms": latency}})


def _filtered(client: LabelStudioClient, project_id: int, *items: dict[str, Any]) -> list[str]:
    query = {"filters": {"conjunction": "and", "items": list(items)},
             "ordering": ["tasks:id"]}
    body = client._request("list tasks", "GET", "api/tasks/", {
        "project": project_id, "query": json.dumps(query), "fields": "all",
        "page_size": 100})
    return sorted(t["data"]["trace_id"] for t in body["tasks"])


def _filter(column: str, operator: str, kind: str, value: Any) -> dict[str, Any]:
    return {"filter": f"filter:{column}", "operator": operator, "type": kind, "value": value}


def test_the_review_tab_shows_and_filters_the_reviewers_columns(
        ls_client: LabelStudioClient, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    ingest(store, [("t", {"channel": "thumbs", "trace_id": "dm-1", "value": "down",
                          "user_id": "u1"}),
                   ("t", {"channel": "thumbs", "trace_id": "dm-3", "value": "up",
                          "user_id": "u2"})], load_mapping())
    traces = [_trace("dm-1", 900, "billing", "pro", "v1"),
              _trace("dm-2", 20000, "search", "free", "v2"),
              _trace("dm-3", 15000, "billing", "free", "v2"),
              _trace("dm-4", 50, "search", "pro", "v1")]  # fast, no thumbs: not queued
    pid = import_traces(ls_client, store, traces, rules=RULES).project_ids["dm-cols"]
    again = import_traces(ls_client, store, traces, rules=RULES)  # nothing new
    assert again.summary.imported == 0

    views = [v for v in ls_client._request("list views", "GET", "api/dm/views/",
                                           {"project": pid})
             if v["data"].get("title") == REVIEW_VIEW]
    assert len(views) == 1  # made once
    hidden = set(views[0]["data"]["hiddenColumns"]["explore"])
    columns = ls_client._request("columns", "GET", "api/dm/columns/", {"project": pid})
    data_keys = {c["id"] for c in columns["columns"] if c.get("parent") == "data"}
    for key in ("trace_id", "model", "model_version", "product_area", "user_segment",
                "latency_ms", "thumbs", "queue_reasons"):
        assert key in data_keys
        assert f"tasks:data.{key}" not in hidden and f"tasks:data.{key}" in REVIEW_COLUMNS
    assert {"tasks:data.messages", "tasks:data.system_prompt"} <= hidden  # the raw JSON
    assert "tasks:predictions_results" not in hidden

    tasks = {t["data"]["trace_id"]: t for t in ls_client.all_tasks(pid)}
    assert sorted(tasks) == ["dm-1", "dm-2", "dm-3"]
    assert tasks["dm-1"]["data"]["queue_reasons"] == "thumbs down"
    assert tasks["dm-2"]["data"]["queue_reasons"] == "latency 20000 ms > 10000"
    assert (tasks["dm-1"]["data"]["thumbs"], tasks["dm-3"]["data"]["thumbs"]) == ("down", "up")

    assert _filtered(ls_client, pid, _filter("tasks:data.product_area", "equal", "String",
                                             "billing")) == ["dm-1", "dm-3"]
    assert _filtered(ls_client, pid, _filter("tasks:data.user_segment", "equal", "String",
                                             "free"),
                     _filter("tasks:data.model_version", "equal", "String", "v2")) == [
        "dm-2", "dm-3"]
    assert _filtered(ls_client, pid, _filter("tasks:data.queue_reasons", "contains",
                                             "String", "latency")) == ["dm-2", "dm-3"]
    assert _filtered(ls_client, pid, _filter("tasks:data.thumbs", "equal", "String",
                                             "down")) == ["dm-1"]
    assert _filtered(ls_client, pid, _filter("tasks:data.latency_ms", "greater", "Number",
                                             16000)) == ["dm-2"]
    assert _filtered(ls_client, pid, _filter("tasks:data.trace_id", "equal", "String",
                                             "dm-3")) == ["dm-3"]

    # the judge's verdict and score: its predictions, in Label Studio's own columns
    for trace_id, verdict, score in (("dm-1", "fail", 0.2), ("dm-2", "pass", 0.9)):
        ls_client.sdk.predictions.create(
            task=tasks[trace_id]["id"], model_version="rules-v1@default@v1", score=score,
            result=[{"from_name": "verdict", "to_name": "answer", "type": "choices",
                     "value": {"choices": [verdict]}}])
    assert _filtered(ls_client, pid, _filter("tasks:predictions_results", "contains",
                                             "String", '"fail"')) == ["dm-1"]
    # the prediction score column averages the current judge's predictions (what
    # `predict` sets as the project's model version)
    ls_client.set_model_version(pid, "rules-v1@default@v1")
    assert _filtered(ls_client, pid, _filter("tasks:predictions_score", "less", "Number",
                                             0.5)) == ["dm-1"]
    # a newer judge: only its predictions' scores count
    ls_client.sdk.predictions.create(
        task=tasks["dm-2"]["id"], model_version="rules-v2@default@v1", score=0.1,
        result=[{"from_name": "verdict", "to_name": "answer", "type": "choices",
                 "value": {"choices": ["fail"]}}])
    ls_client.set_model_version(pid, "rules-v2@default@v1")
    assert _filtered(ls_client, pid, _filter("tasks:predictions_score", "less", "Number",
                                             0.5)) == ["dm-2"]
    store.close()
