"""Failure clusters against a real Label Studio: reviewers' fail/pass annotations with
explanations on a binary (v1) queue, synced; `clusters --label-tasks` writes each failed
task's cluster into the task (a Data Manager filter); `schema suggest` drafts v2 with new
categories, and `schema push` of the draft is accepted as compatible: the project's label
config then offers them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cluster_queue import reviewed_queue, schema_dir
from tests.support.cluster_queue import run_cli as _run

from ls_llmtrace.evals.clusters import purity_recall
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.schema.model import load_schema


@pytest.fixture()
def schemas(ls_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return schema_dir(ls_env, monkeypatch)


def test_clusters_label_tasks_and_the_suggested_schema_pushes_as_compatible(
        ls_client: LabelStudioClient, schemas: Path, ls_env: Path) -> None:
    queue = "clq"
    project_id, tasks, reviews, truth = reviewed_queue(ls_client, ls_env, queue)

    # clusters, written into the tasks
    found = _run("clusters", "--queue", queue, "--label-tasks", "--json")
    assert found.exit_code == 0, found.output
    report = json.loads(found.output)
    assert report["failures"] == len(truth) and report["reviewed"] == len(reviews)
    assert report["tasks_labelled"] == len(truth)
    assigned = {t: c["id"] for c in report["clusters"] for t in c["trace_ids"]}
    assert purity_recall(assigned, truth)[0] >= 0.8
    names = {c["id"]: c["name"] for c in report["clusters"]}
    for trace_id, cluster in assigned.items():
        task = ls_client.sdk.tasks.get(id=str(tasks[trace_id]))
        assert task.data["llmtrace_cluster"] == cluster
        assert task.data["llmtrace_cluster_name"] == names[cluster]
        assert task.data["trace_id"] == trace_id  # the rest of the data is kept
        assert task.meta["llmtrace_cluster"] == cluster
    passing = next(t for t in truth.keys() ^ tasks.keys())
    assert "llmtrace_cluster" not in ls_client.sdk.tasks.get(id=str(tasks[passing])).data
    # the Data Manager filters on it
    query = {"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:data.llmtrace_cluster", "operator": "equal",
         "type": "String", "value": "c1"}]}}
    listed = ls_client.sdk.tasks.list(project=project_id, query=json.dumps(query),
                                      fields="all")
    assert sorted(t.id for t in listed) == sorted(
        tasks[t] for t, c in assigned.items() if c == "c1")

    # the draft next version: new categories, pushed as a compatible change
    suggested = _run("schema", "suggest", "--queue", queue)
    assert suggested.exit_code == 0, suggested.output
    draft_path = schemas / "default.v2.yaml"
    draft = load_schema(draft_path)
    assert draft.version == 2 and len(draft.categories) >= 3
    assert "schema diff default@v1 -> default@v2:" in suggested.output
    pushed = _run("schema", "push", draft_path, "--queue", queue)
    assert pushed.exit_code == 0, pushed.output
    config = ls_client.project(project_id).label_config
    for category in draft.categories:
        assert f'value="{category}"' in config
    assert ls_client.find_project(f"llmtrace {queue} | default@v2") == project_id
