"""A binary (default@v1) queue in a real Label Studio with the planted failure modes'
reviews as annotations, synced into the store: the setup shared by the failure-cluster
tests that go through Label Studio (tests/integration/test_clusters_ls.py and the browser
test of the suggested categories)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.support.planted_modes import planted

from ls_llmtrace.cli import main
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import AnnotationRecord

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def schema_dir(ls_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A schema folder holding only default@v1, set as the CLI's schema folder and schema."""
    directory = ls_env / "schemas"
    directory.mkdir()
    shutil.copy(REPO / "label_configs" / "default.v1.yaml", directory / "default.v1.yaml")
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(directory))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA", str(directory / "default.v1.yaml"))
    return directory


def reviewed_queue(ls_client: LabelStudioClient, ls_env: Path, queue: str,
                   ) -> tuple[int, dict[str, int], list[AnnotationRecord], dict[str, str]]:
    """Import the planted traces into ``queue``, annotate them in Label Studio as the planted
    reviewers did (verdict, score, explanation) and sync. Returns (project id, trace id ->
    task id, the trace-level reviews, truth: failing trace id -> planted mode)."""
    traces, records, truth = planted(0, sizes=(6, 8), schema_version=1)
    source = ls_env / "traces.jsonl"
    source.write_text("".join(t.model_dump_json(exclude_defaults=True) + "\n" for t in traces),
                      encoding="utf-8")
    imported = run_cli("import", source, "--queue", queue)
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
    synced = run_cli("sync")
    assert synced.exit_code == 0, synced.output
    return project_id, tasks, reviews, truth
