"""A queue follows its schema version, against a real Label Studio: after `schema push v2
--migration`, predict, import, route and the demo loop use the v2 project and create no v1
twin; an older version is refused in one line; `queues` lists every queue with its version
and counts; sync finds its schema files from a subdirectory and names a missing one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ls_llmtrace.cli import main
from ls_llmtrace.demo import demo_loop
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "label_configs" / "default.v1.yaml"
V2 = REPO / "label_configs" / "default.v2.yaml"
MIGRATION = REPO / "label_configs" / "migrations" / "default.v1-to-v2.yaml"
SAMPLES = REPO / "examples" / "sample_traces.jsonl"


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _jsonl(path: Path, prefix: str, n: int) -> Path:
    path.write_text("".join(json.dumps({"trace_id": f"{prefix}-{i}", "output": f"answer {i}."})
                            + "\n" for i in range(n)), encoding="utf-8")
    return path


def _titles(client: LabelStudioClient, queue: str) -> list[str]:
    return sorted(p["title"] for p in client.project_summaries(title=f"llmtrace {queue} | ")
                  if p["title"].startswith(f"llmtrace {queue} | "))


def _annotate(client: LabelStudioClient, task_id: int, score: float) -> None:
    client.sdk.annotations.create(id=task_id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "score", "to_name": "answer", "type": "number",
         "value": {"number": score}},
        {"from_name": "explanation", "to_name": "answer", "type": "textarea",
         "value": {"text": ["wrong"]}}])


def _push_v2(queue: str) -> Result:
    pushed = _run("schema", "push", V2, "--queue", queue, "--migration", MIGRATION)
    assert pushed.exit_code == 0, pushed.output
    return pushed


def _one_error(result: Result) -> str:
    """The one line a refused command prints (whatever progress went to stderr before)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def _queues(names: set[str]) -> dict[str, dict[str, Any]]:
    listing = _run("queues", "--json")
    assert listing.exit_code == 0, listing.output
    return {row["queue"]: row for row in json.loads(listing.stdout) if row["queue"] in names}


def test_after_a_v2_push_every_command_uses_the_v2_project(
        ls_env: Path, ls_client: LabelStudioClient, backend: ManagedBackend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend.auth is not None  # closed by default: the managed backend made a login
    q = "qv"
    first = _run("import", _jsonl(ls_env / "a.jsonl", "qv-a", 3), "--queue", q)
    assert first.exit_code == 0, first.output
    project_id = ls_client.find_project(f"llmtrace {q} | default@v1")
    assert project_id is not None and first.stdout.startswith(f"project {project_id}: ")
    [(task_id, _), *_] = sorted(ls_client.task_trace_ids(project_id))
    _annotate(ls_client, task_id, 0.5)

    _push_v2(q)
    assert _titles(ls_client, q) == [f"llmtrace {q} | default@v2"]
    assert ls_client.find_project(f"llmtrace {q} | default@v2") == project_id

    # predict, import and route all land in the (migrated) v2 project
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_USER", backend.auth[0])
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PASSWORD", backend.auth[1])
    predicted = _run("predict", "--queue", q, "--backend-url", backend.url, "--json")
    assert predicted.exit_code == 0, predicted.output
    answer = json.loads(predicted.stdout)
    assert (answer["project"], answer["tasks"]) == (project_id, 3)
    assert answer["model_version"].endswith("@default@v2")
    assert ls_client.prediction_count(project_id) == 3

    more = _run("import", _jsonl(ls_env / "b.jsonl", "qv-b", 2), "--queue", q)
    assert more.exit_code == 0, more.output
    assert more.stdout.startswith(f"project {project_id}: read 2, imported 2")
    tasks = {t["data"]["trace_id"]: t for t in ls_client.all_tasks(project_id)}
    assert sorted(tasks) == ["qv-a-0", "qv-a-1", "qv-a-2", "qv-b-0", "qv-b-1"]
    assert tasks["qv-b-0"]["meta"]["schema_version"] == 2

    rules = ls_env / "rules.yaml"
    rules.write_text(f"queues:\n  - name: {q}\n", encoding="utf-8")
    routed = _run("route", "--rules", rules, "--json")
    assert routed.exit_code == 0, routed.output
    assert json.loads(routed.stdout)["routed"] == 0
    imported = _run("import", _jsonl(ls_env / "c.jsonl", "qv-c", 1), "--rules", rules)
    assert imported.exit_code == 0, imported.output
    assert _titles(ls_client, q) == [f"llmtrace {q} | default@v2"]  # no v1 twin
    assert len(list(ls_client.task_trace_ids(project_id))) == 6

    # an older version into this queue is refused in one line, saying how to get one
    older = _run("import", ls_env / "c.jsonl", "--queue", q, "--schema", V1)
    assert older.exit_code == 2
    line = _one_error(older)
    assert f"queue '{q}' is at default@v2 (project {project_id})" in line
    assert f"--queue {q}-v1" in line
    pushed_back = _run("schema", "push", V1, "--queue", q)
    assert pushed_back.exit_code == 2
    line = _one_error(pushed_back)
    assert "newer than default@v1" in line and f"--queue {q}-v1" in line
    assert _titles(ls_client, q) == [f"llmtrace {q} | default@v2"]

    row = _queues({q})[q]
    assert (row["project_id"], row["schema"], row["tasks"], row["annotations"]) == (
        project_id, "default@v2", 6, 1)

    # the golden set is cut with the queue's current version (the migrated record)
    golden = ls_env / "golden.jsonl"
    exported = _run("golden", "export", "--queue", q, "-o", golden)
    assert exported.exit_code == 0, exported.output
    [case] = [json.loads(line) for line in golden.read_text().splitlines()]
    assert (case["trace_id"], case["schema_version"]) == ("qv-a-0", "default@v2")


def test_the_demo_loop_twice_after_a_migration_imports_and_predicts_nothing(
        ls_env: Path, ls_client: LabelStudioClient, backend: ManagedBackend) -> None:
    q = "demo-q"
    lines: list[str] = []
    with Store() as store:
        first = demo_loop(ls_client, store, SAMPLES, backend.url, queue=q, echo=lines.append,
                          basic_auth=backend.auth)
    assert (first.imported.imported, first.predicted.created) == (22, 22)
    _push_v2(q)
    # The judge of v2 is another model version: the first run after the move deletes the
    # v1 predictions and predicts each task once in the v2 format; every run after it
    # adds nothing.
    for predicted in (22, 0, 0):
        with Store() as store:
            again = demo_loop(ls_client, store, SAMPLES, backend.url, queue=q,
                              echo=lines.append, basic_auth=backend.auth)
        assert again.project_id == first.project_id
        assert (again.imported.imported, again.imported.duplicates) == (0, 22)
        assert (again.predicted.pending, again.predicted.created) == (predicted, predicted)
        assert again.predicted.model_version.endswith("@default@v2")
        assert again.predicted.removed == predicted  # the v1 predictions, once
    assert _titles(ls_client, q) == [f"llmtrace {q} | default@v2"]
    # one judge tab per task: the v1 predictions were deleted, not kept beside the v2 ones
    assert ls_client.prediction_count(first.project_id) == 22
    versions = ls_client.tasks_with_prediction_versions(first.project_id)
    assert len(versions) == 22
    assert all(len(v) == 1 and next(iter(v)).endswith("@default@v2") for _, v in versions)

    # a queue Label Studio knows but this store does not (e.g. made by an older demo)
    elsewhere, _ = ls_client.push_schema(load_schema(V1), "ls-only")
    rows = _queues({q, "ls-only"})
    assert (rows[q]["schema"], rows[q]["tasks"], rows[q]["annotations"]) == (
        "default@v2", 22, 0)
    assert (rows["ls-only"]["project_id"], rows["ls-only"]["schema"]) == (
        elsewhere, "default@v1")


def test_sync_from_a_subdirectory_and_a_missing_schema_file(
        ls_env: Path, ls_client: LabelStudioClient, monkeypatch: pytest.MonkeyPatch) -> None:
    imported = _run("import", _jsonl(ls_env / "s.jsonl", "sub", 2), "--queue", "subdir")
    assert imported.exit_code == 0, imported.output
    project_id = ls_client.find_project("llmtrace subdir | default@v1")
    assert project_id is not None
    [(task_id, _), _] = sorted(ls_client.task_trace_ids(project_id))
    _annotate(ls_client, task_id, 0.25)

    monkeypatch.chdir(REPO / "docs")
    synced = _run("sync")
    assert synced.exit_code == 0, synced.output
    assert f"project {project_id}: 2 tasks changed, 1 records written" in synced.stdout
    with Store() as store:
        [record] = store.records()
        assert (record.trace_id, record.score) == ("sub-0", 0.25)
        store.remember_project(project_id + 100000, "ghost", "ghost", 3,
                               "llmtrace ghost | ghost@v3")
    missing = _run("sync")
    assert missing.exit_code == 2
    line = _one_error(missing)
    assert f"project {project_id + 100000} (llmtrace ghost | ghost@v3) needs schema " \
        "ghost@v3" in line
    assert "ghost.v3.yaml" in line
