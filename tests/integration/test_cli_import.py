"""The CLI against a real Label Studio: bad lines are reported and kept aside, good lines go in."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.store import Store


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_reports_bad_lines_and_keeps_the_rest(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    good = {"trace_id": "cli-good-1", "messages": [{"role": "user", "content": "hi"}],
            "output": "Hello! How can I help?"}
    good2 = {"trace_id": "cli-good-2", "output": "<script>alert(1)</script> is shown as text."}
    path = _write(ls_env / "traces.jsonl", [
        json.dumps(good),
        "{not json",
        json.dumps({"trace_id": "cli-bad-role", "messages": [{"role": "robot", "content": "x"}]}),
        "",
        json.dumps({"output": "no id"}),
        json.dumps(good2),
        json.dumps({"trace_id": "cli-typo", "outptu": "typo in a field name"}),
    ])
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(path), "--queue", "cli"])
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.stdout and "rejected 4" in result.stdout
    err = result.stderr
    assert f"{path}: line 2: (record): not valid JSON" in err
    assert f"{path}: line 3: messages.0.role:" in err
    assert f"{path}: line 5: trace_id: Field required" in err
    assert f"{path}: line 7: outptu: Extra inputs are not permitted" in err
    rejects_file = ls_env / "home" / "rejects" / "traces.jsonl.rejects.jsonl"
    kept = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [k["location"] for k in kept] == ["line 2", "line 3", "line 5", "line 7"]
    assert kept[0]["raw"] == "{not json"

    # --strict is all or nothing: with rejects, nothing is sent and the exit code is 4
    again = runner.invoke(main, ["import", str(path), "--queue", "cli", "--strict"])
    assert again.exit_code == 4
    assert "--strict: 4 rejected, nothing imported" in again.stdout
    # re-running changes nothing
    rerun = runner.invoke(main, ["import", str(path), "--queue", "cli"])
    assert rerun.exit_code == 0, rerun.output
    assert "imported 0, skipped as duplicates 2" in rerun.stdout

    project_id = ls_client.find_project("llmtrace cli | default@v1")
    assert project_id is not None
    tasks = list(ls_client.task_trace_ids(project_id))
    assert sorted(t for _, t in tasks) == ["cli-good-1", "cli-good-2"]


def test_import_after_a_crash_between_label_studio_and_the_ledger(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    """Tasks created in Label Studio but never recorded locally are found, not duplicated."""
    path = _write(ls_env / "crash.jsonl", [
        json.dumps({"trace_id": f"crash-{i}", "output": f"answer {i}."}) for i in range(5)])
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(path), "--queue", "crash"]).exit_code == 0
    with Store() as store:
        project_id = store.projects()[0]["project_id"]
    in_label_studio = sorted(ls_client.task_trace_ids(project_id))
    assert len(in_label_studio) == 5
    # Simulate the crash: the process died after Label Studio created the tasks but before
    # it recorded their ids, so the ledger has no task and the claims (still held by the
    # dead importer, within their lease) no task id.
    with Store() as store:
        store.conn.execute("DELETE FROM ls_tasks WHERE project_id=?", (project_id,))
        store.conn.execute("UPDATE queue_items SET task_id=NULL WHERE project_id=?",
                           (project_id,))
    result = runner.invoke(main, ["import", str(path), "--queue", "crash"])
    assert result.exit_code == 0, result.output
    assert "imported 0" in result.stdout, result.output
    # no new task, and the reconcile found exactly the tasks created before the crash
    assert sorted(ls_client.task_trace_ids(project_id)) == in_label_studio
    with Store() as store:
        ledger = sorted((r["task_id"], r["trace_id"]) for r in store.conn.execute(
            "SELECT task_id, trace_id FROM ls_tasks WHERE project_id=?", (project_id,)))
        claims = sorted((r["task_id"], r["item_key"]) for r in store.conn.execute(
            "SELECT task_id, item_key FROM queue_items WHERE project_id=?", (project_id,)))
    assert ledger == in_label_studio
    assert claims == in_label_studio


def test_unreachable_label_studio_is_a_one_line_error(ls_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["schema", "push"])
    assert result.exit_code == 3
    assert "no Label Studio at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.output
