"""Failure clusters against a real Label Studio: reviewers' fail/pass annotations with
explanations on a binary (v1) queue, synced; `clusters --label-tasks` writes each failed
task's cluster into the task (a Data Manager filter); `schema suggest` drafts v2 with new
categories, and `schema push` of the draft is accepted as compatible: the project's label
config then offers them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.support.planted_modes import planted

from ls_llmtrace.cli import main
from ls_llmtrace.evals.clusters import purity_recall
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.schema.model import load_schema

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def schemas(ls_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = ls_env / "schemas"
    directory.mkdir()
    shutil.copy(REPO / "label_configs" / "default.v1.yaml", directory / "default.v1.yaml")
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(directory))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA", str(directory / "default.v1.yaml"))
    return directory


def test_clusters_label_tasks_and_the_suggested_schema_pushes_as_compatible(
        ls_client: LabelStudioClient, schemas: Path, ls_env: Path) -> None:
    queue = "clq"
    traces, records, truth = planted(0, sizes=(6, 8), schema_version=1)
    source = ls_env / "traces.jsonl"
    source.write_text("".join(t.model_dump_json(exclude_defaults=True) + "\n" for t in traces),
                      encoding="utf-8")
    imported = _run("import", source, "--queue", queue)
    assert imported.exit_code == 0, imported.output
    project_id = ls_client.find_project(f"llmtrace {queue} | default@v1")
    assert project_id is not None
    tasks = {trace: task for task, trace in ls_client.task_trace_ids(project_id)}
    reviews = [r for r in records if r.scope.kind == "trace"]
    for r in reviews:
        result = [{"from_name": "verdict", "to_name": "answer", "type": "choices",
                   "value": {"choices": [r.label]}},
                  {"from_name": "score", "to_name": "answer", "type": "number",
                   "value": {"number": 0.1 if r.label == "fail" else 0.9}}]
        if r.explanation:
            result.append({"from_name": "explanation", "to_name": "answer",
                           "type": "textarea", "value": {"text": [r.explanation]}})
        ls_client.sdk.annotations.create(id=tasks[r.trace_id], result=result)
    synced = _run("sync")
    assert synced.exit_code == 0, synced.output

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
