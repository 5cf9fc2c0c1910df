"""Review queues against a real Label Studio: rules route a mixed batch, a late thumbs-down
routes a trace later, re-runs and two imports at once create no duplicate task, a crashed
claim is taken over once, and a pairwise queue pairs two model versions of one input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import AnnotationRecord, Source
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SCHEMA = load_schema(REPO / "label_configs" / "default.v1.yaml")


def _tasks(client: LabelStudioClient, title: str) -> list[str]:
    project_id = client.find_project(title)
    if project_id is None:
        return []
    return [trace_id for _, trace_id in client.task_trace_ids(project_id)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rules(path: Path, prefix: str, extra: str = "") -> Path:
    path.write_text(f"""
queues:
  - name: {prefix}-thumbs
    triggers: {{thumbs_down: true}}
  - name: {prefix}-slow
    triggers: {{latency_ms_over: 5000, error: true}}
  - name: {prefix}-billing
    filters: {{product_area: [billing]}}
{extra}""", encoding="utf-8")
    return path


def _mixed(prefix: str) -> list[dict[str, Any]]:
    """LangSmith runs: one with an end user's thumbs-down, one slow, one billing, one plain."""
    def run(name: str, *, latency_s: float = 1.0, meta: dict[str, Any] | None = None,
            feedback: list[dict[str, Any]] | None = None, error: str | None = None
            ) -> dict[str, Any]:
        run_id = f"{prefix}-{name}"
        start = datetime(2025, 5, 1, tzinfo=UTC)
        return {"id": run_id, "trace_id": run_id, "run_type": "llm", "name": "chat",
                "dotted_order": "1", "start_time": start.isoformat(),
                "end_time": (start + timedelta(seconds=latency_s)).isoformat(),
                "inputs": {"messages": [{"role": "user", "content": f"question {name}"}]},
                "outputs": {"choices": [{"message": {"role": "assistant",
                                                     "content": f"answer {name}"}}]},
                "extra": {"metadata": meta or {}}, "feedback": feedback or [], "error": error}
    return [
        run("thumbs", feedback=[{"id": f"{prefix}-fb1", "run_id": f"{prefix}-thumbs",
                                 "key": "user_thumbs", "score": 0,
                                 "feedback_source": {"type": "api"}}]),
        run("slow", latency_s=9.0),
        run("failed", error="ReadTimeout"),
        run("billing", meta={"product_area": "billing"}),
        run("plain"),
        run("billing-slow", latency_s=6.0, meta={"product_area": "billing"}),
    ]


def test_rules_route_a_mixed_batch_and_reruns_add_nothing(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    p = "mix"
    traces = _write_jsonl(ls_env / "runs.jsonl", _mixed(p))
    rules = _rules(ls_env / "rules.yaml", p)
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(traces), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "read 6, imported 5, skipped as duplicates 0, rejected 0" in result.stdout
    assert "matched no queue 1; feedback records 1" in result.stdout
    title = "llmtrace {} | default@v1"
    expected = {
        f"{p}-thumbs": [f"{p}-thumbs"],
        f"{p}-slow": [f"{p}-billing-slow", f"{p}-failed", f"{p}-slow"],
        f"{p}-billing": [f"{p}-billing", f"{p}-billing-slow"],
    }
    for queue, trace_ids in expected.items():
        assert sorted(_tasks(ls_client, title.format(queue))) == trace_ids, queue
    # the feedback inside the trace became a record with the end user as source
    with Store() as store:
        [record] = store.records(source="end_user")
        assert (record.record_key, record.trace_id) == (f"langsmith:{p}-fb1", f"{p}-thumbs")
        reasons = {r["item_key"]: r["reason"] for r in
                   store.conn.execute("SELECT item_key, reason FROM queue_items")}
    assert reasons[f"{p}-failed"] == "error"
    assert reasons[f"{p}-slow"] == "latency 9000 ms > 5000"
    # again: nothing new anywhere
    again = runner.invoke(main, ["import", str(traces), "--rules", str(rules)])
    assert "read 6, imported 0, skipped as duplicates 5" in again.stdout, again.output
    route = runner.invoke(main, ["route", "--rules", str(rules), "--json"])
    assert json.loads(route.stdout)["routed"] == 0, route.output
    for queue, trace_ids in expected.items():
        assert sorted(_tasks(ls_client, title.format(queue))) == trace_ids, queue
    listing = runner.invoke(main, ["queues", "--json"])
    counts = {row["queue"]: row["tasks"] for row in json.loads(listing.stdout)
              if row["queue"] in expected}
    assert counts == {q: len(t) for q, t in expected.items()}


def test_a_late_thumbs_down_routes_the_trace_then(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    p = "late"
    traces = _write_jsonl(ls_env / "late.jsonl", [
        r for r in _mixed(p) if r["id"] in (f"{p}-plain", f"{p}-billing")])
    rules = _rules(ls_env / "rules.yaml", p)
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(traces), "--rules", str(rules)]).exit_code == 0
    thumbs_title = f"llmtrace {p}-thumbs | default@v1"
    assert _tasks(ls_client, thumbs_title) == []
    # the user's thumbs-down arrives later, through any feedback channel
    with Store() as store, store.transaction() as conn:
        store.upsert_record(conn, AnnotationRecord(
            record_key="widget:42", trace_id=f"{p}-plain", schema_id="imported",
            schema_version=0, source=Source.end_user, feedback_name="thumbs", label="down"))
    result = runner.invoke(main, ["route", "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "1 routed into new queues" in result.stdout
    assert _tasks(ls_client, thumbs_title) == [f"{p}-plain"]
    again = runner.invoke(main, ["route", "--rules", str(rules)])
    assert "0 routed into new queues" in again.stdout
    assert _tasks(ls_client, thumbs_title) == [f"{p}-plain"]


def test_two_imports_at_once_create_no_duplicate_task(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    rows = [{"trace_id": f"conc-{i}", "output": f"answer {i}",
             "metadata": {"latency_ms": 10000 if i % 2 else 10}} for i in range(600)]
    traces = _write_jsonl(ls_env / "conc.jsonl", rows)
    rules = ls_env / "rules.yaml"
    rules.write_text("queues:\n  - name: conc-all\n  - name: conc-slow\n"
                     "    triggers: {latency_ms_over: 5000}\n")
    env = {**os.environ}
    cmd = [str(Path(sys.executable).parent / "ls-llmtrace"), "import", str(traces),
           "--rules", str(rules), "--batch-size", "10"]  # many small batches: they interleave
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    # each process says how many tasks it created per queue: together exactly one per item
    created: Counter[str] = Counter()
    for out, _ in outs:
        line = next(ln for ln in out.splitlines() if ln.startswith("queues: "))
        for part in line.removeprefix("queues: ").split(";")[0].split(", "):
            if "+" in part:
                queue, count = part.split(" +")
                created[queue] += int(count)
    assert created == {"conc-all": 600, "conc-slow": 300}
    assert all("conc-all +" in out for out, _ in outs), "both imports did part of the work"
    for queue, size in (("conc-all", 600), ("conc-slow", 300)):
        ids = _tasks(ls_client, f"llmtrace {queue} | default@v1")
        dupes = [t for t, n in Counter(ids).items() if n > 1]
        assert dupes == [] and len(ids) == size, queue
    projects = [p for p in ls_client.sdk.projects.list(page_size=100)
                if p.title == "llmtrace conc-all | default@v1"]
    assert len(projects) == 1  # the project too was created once


def test_a_crashed_claim_is_taken_over_once(ls_env: Path, ls_client: LabelStudioClient,
                                            monkeypatch: Any) -> None:
    rows = [{"trace_id": f"crash4-{i}", "output": f"answer {i}"} for i in range(4)]
    traces = _write_jsonl(ls_env / "c.jsonl", rows)
    rules = ls_env / "rules.yaml"
    rules.write_text("queues:\n  - name: crash4\n")
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(traces), "--rules", str(rules)]).exit_code == 0
    title = "llmtrace crash4 | default@v1"
    project_id = ls_client.find_project(title)
    assert project_id is not None
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    with Store() as store:
        # crash 1: died after Label Studio created the task, before the ledger knew it
        # crash 2: died after claiming, before Label Studio saw anything
        store.conn.execute("DELETE FROM ls_tasks WHERE trace_id='crash4-0'")
        store.conn.execute("UPDATE queue_items SET task_id=NULL, claimed_by='dead:1', "
                           "claimed_at=? WHERE item_key='crash4-0'", (long_ago,))
        store.conn.execute("INSERT INTO queue_items (project_id, item_key, queue, reason, "
                           "claimed_by, claimed_at) VALUES (?, 'crash4-9', 'crash4', 'x', "
                           "'dead:2', ?)", (project_id, long_ago))
    more = _write_jsonl(ls_env / "c2.jsonl", [*rows, {"trace_id": "crash4-9", "output": "9"}])
    fresh = runner.invoke(main, ["import", str(more), "--rules", str(rules)])
    assert "imported 1, skipped as duplicates 4" in fresh.stdout, fresh.output
    assert sorted(_tasks(ls_client, title)) == [f"crash4-{i}" for i in (0, 1, 2, 3, 9)]
    # a claim of an import that cannot be checked from here and is not stale yet: left
    # to that import, and said so (not counted as a duplicate)
    with Store() as store:
        store.conn.execute("INSERT INTO queue_items (project_id, item_key, queue, reason, "
                           "claimed_by, claimed_at) VALUES (?, 'crash4-10', 'crash4', 'x', "
                           "'alive:1', ?)", (project_id, datetime.now(UTC).isoformat()))
    live = _write_jsonl(ls_env / "c3.jsonl", [{"trace_id": "crash4-10", "output": "10"}])
    result = runner.invoke(main, ["import", str(live), "--rules", str(rules)])
    assert "imported 0, skipped as duplicates 0" in result.stdout, result.output
    assert "left to another import still running 1" in result.stdout, result.output
    assert "crash4-10" not in _tasks(ls_client, title)


def test_pairwise_queue_pairs_two_model_versions_and_syncs_the_preference(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    question = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of Australia?"}]
    rows = [
        {"trace_id": "pw-a", "messages": question[1:], "system_prompt": "Be brief.",
         "output": "Sydney.", "metadata": {"model_version": "m-1"}},
        {"trace_id": "pw-b", "messages": question[1:], "system_prompt": "Be brief.",
         "output": "Canberra.", "metadata": {"model_version": "m-2"}},
        {"trace_id": "pw-c", "messages": question[1:], "system_prompt": "Be brief.",
         "output": "Canberra, ACT.", "metadata": {"model_version": "m-2"}},
        {"trace_id": "pw-other", "messages": [{"role": "user", "content": "Hi"}],
         "output": "Hello.", "metadata": {"model_version": "m-1"}},
    ]
    traces = _write_jsonl(ls_env / "pw.jsonl", rows)
    rules = ls_env / "rules.yaml"
    rules.write_text("queues:\n  - name: pw\n    pairwise: {compare: model_version}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(traces), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert "queues: pw +1" in result.stdout
    project_id = ls_client.find_project("llmtrace pw | default@v1")
    assert project_id is not None
    [task] = [t.model_dump(mode="json") for t in ls_client.sdk.tasks.list(
        project=project_id, fields="all")]
    data, sides = task["data"], task["meta"]["pair_sides"]
    shown = {"left": sides["left"]["trace_id"], "right": sides["right"]["trace_id"]}
    assert sorted(shown.values()) == ["pw-a", "pw-b"]
    answers = {"pw-a": "Sydney.", "pw-b": "Canberra."}
    assert (data["left"], data["right"]) == (answers[shown["left"]], answers[shown["right"]])
    assert "m-1" not in repr(data) and "m-2" not in repr(data)  # blind
    config = ls_client.project(project_id).label_config
    assert '<Choices name="preference" toName="left"' in config
    # a re-run (and pw-c, same input as pw-b's variant) adds no second pair for a, b
    again = runner.invoke(main, ["import", str(traces), "--rules", str(rules)])
    assert "queues: nothing new" in again.stdout, again.output
    # the reviewer prefers the right answer; sync maps it to the trace shown there
    ls_client.sdk.annotations.create(id=task["id"], result=[
        {"from_name": "preference", "to_name": "left", "type": "choices",
         "value": {"choices": ["right"]}}])
    with Store() as store:
        [summary] = sync_all(ls_client, store, {(SCHEMA.id, SCHEMA.version): SCHEMA},
                         [project_id])
        assert summary.records_written == 1 and summary.rejected == 0
        [record] = [r for r in store.records() if r.ls_project_id == project_id]
    assert (record.label, record.trace_id, record.feedback_name) == ("preferred",
                                                                     shown["right"],
                                                                     "preference")
    assert record.metadata["preferred_model_version"] == {"pw-a": "m-1",
                                                          "pw-b": "m-2"}[shown["right"]]
    assert record.metadata["right_trace_id"] == shown["right"]
    assert record.schema_id == "default/pairwise" and record.source == Source.reviewer


def test_import_detects_langfuse_and_stores_its_scores(
    ls_env: Path, ls_client: LabelStudioClient
) -> None:
    path = REPO / "tests" / "fixtures" / "langfuse-traces" / "crewai-2025-07-11.trace.json"
    result = CliRunner().invoke(main, ["import", str(path), "--queue", "lf"])
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.stdout and "feedback records 2" in result.stdout
    with Store() as store:
        names = sorted(r.feedback_name or "" for r in store.records(source="evaluator"))
    assert names == ["hallucination", "toxicity"]
    assert _tasks(ls_client, "llmtrace lf | default@v1") == ["a287bb31e317433610d8827617471140"]
    # forcing the wrong format: the record is rejected with where and why; --strict fails
    wrong = CliRunner().invoke(main, ["import", str(path), "--queue", "lf", "--format", "otlp",
                                      "--strict"])
    assert wrong.exit_code == 4
    assert f"{path}: record 0: resourceSpans: missing or not a list" in wrong.stderr
    assert "--strict: 1 rejected, nothing imported" in wrong.stdout  # all or nothing
