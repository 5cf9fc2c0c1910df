"""Schema migration end to end against a real Label Studio: an incompatible schema version is
refused with counts, then migrated in place (annotations and records), crash-safe and
idempotent; ratings map onto 0.0-1.0 both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ls_llmtrace import settings
from ls_llmtrace.cli import main
from ls_llmtrace.errors import MigrationRequired
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Message, Trace
from ls_llmtrace.records.migrate import push_schema_version
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.labelconfig import build_label_config
from ls_llmtrace.schema.migration import load_migration
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store


class Crash(Exception):
    """Raised from the ``after_item`` callback to stop a migration half-way."""


SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

# trace -> (verdict, categories, score) written by a v1 reviewer
V1_ANNOTATIONS: dict[str, tuple[str, list[str], float | None]] = {
    "mig-0": ("fail", ["hallucination"], 0.0),
    "mig-1": ("fail", ["incomplete", "truncated"], 0.5),
    "mig-2": ("fail", ["truncated"], 0.74),
    "mig-3": ("pass", [], None),
    "mig-4": ("fail", ["off_topic", "hallucination"], 0.2),
    "mig-5": ("fail", ["incomplete"], None),
}
# what v2 must show: categories and stars in Label Studio, score 0.0-1.0 in the store
V2_EXPECTED: dict[str, tuple[str, list[str], int | None, float | None]] = {
    "mig-0": ("fail", ["fabrication"], 1, 0.0),
    "mig-1": ("fail", ["incomplete_answer"], 3, 0.5),
    "mig-2": ("fail", ["incomplete_answer"], 4, 0.75),
    "mig-3": ("pass", [], None, None),
    "mig-4": ("fail", ["off_topic", "fabrication"], 2, 0.25),
    "mig-5": ("fail", ["incomplete_answer"], None, None),
}


def _v1_result(verdict: str, categories: list[str], score: float | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"from_name": "verdict", "to_name": "answer", "type": "choices",
                                  "value": {"choices": [verdict]}}]
    if categories:
        out.append({"from_name": "categories", "to_name": "answer", "type": "choices",
                    "value": {"choices": categories}})
    if score is not None:
        out.append({"from_name": "score", "to_name": "answer", "type": "number",
                    "value": {"number": score}})
    out.append({"from_name": "explanation", "to_name": "answer", "type": "textarea",
                "value": {"text": [f"reviewed as {verdict}"]}})
    return out


def _ls_state(client: LabelStudioClient, project_id: int) -> dict[str, Any]:
    """trace id -> (annotation id, updated_at, result) as Label Studio has it."""
    out = {}
    for task in client.all_tasks(project_id):
        for annotation in task.get("annotations") or []:
            out[task["data"]["trace_id"]] = (annotation["id"], annotation["updated_at"],
                                             annotation["result"])
    return out


def _ls_values(result: list[dict[str, Any]]) -> tuple[str, list[str], int | None]:
    by_name = {r["from_name"]: r for r in result}
    verdict = by_name["verdict"]["value"]["choices"][0]
    cats = by_name["categories"]["value"]["choices"] if "categories" in by_name else []
    stars = None
    if "score" in by_name:
        assert by_name["score"]["type"] == "rating"
        stars = by_name["score"]["value"]["rating"]
    return verdict, cats, stars


def _records(store: Store) -> dict[str, tuple[int, str | None, list[str], float | None, str]]:
    return {r.trace_id: (r.schema_version, r.label, r.labels, r.score, r.model_dump_json())
            for r in store.records()}


def test_incompatible_push_refused_then_migrated_in_place(
        ls_client: LabelStudioClient, ls_env: Path) -> None:
    v1 = load_schema(SCHEMAS / "triage.v1.yaml")
    v2 = load_schema(SCHEMAS / "triage.v2.yaml")
    migration = load_migration(SCHEMAS / "migrations" / "triage.v1-to-v2.yaml")
    known = {(v1.id, 1): v1, (v2.id, 2): v2}
    store = Store(settings.db_url())
    traces = [Trace(trace_id=f"mig-{i}", output=f"Answer {i} <b>bold</b>.",
                    messages=[Message(role="user", content=f"question {i}")]) for i in range(8)]
    pid = import_traces(ls_client, store, traces, queue="mig", schema=v1).project_id
    tasks = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}
    for trace_id, (verdict, cats, score) in V1_ANNOTATIONS.items():
        ls_client.sdk.annotations.create(id=tasks[trace_id],
                                         result=_v1_result(verdict, cats, score))
    [first] = sync_all(ls_client, store, known, [pid])
    assert first.records_written == 6 and first.rejected == 0
    assert {r.schema_version for r in store.records()} == {1}

    # 1. refused without a migration, naming the counts (library and CLI)
    with pytest.raises(MigrationRequired) as info:
        push_schema_version(ls_client, store, v2, "mig", known)
    message = str(info.value)
    assert "5 of 6 annotations would be orphaned" in message
    assert "categories 'hallucination' (2)" in message
    assert "categories 'truncated' (2)" in message and "categories 'incomplete' (2)" in message
    assert "score as number (now rating 1-5) (4)" in message
    assert "5 stored records would be orphaned" in message
    cli = CliRunner().invoke(main, ["schema", "push", str(SCHEMAS / "triage.v2.yaml"),
                                    "--queue", "mig"])
    assert cli.exit_code == 5, cli.output
    assert "5 of 6 annotations would be orphaned" in cli.output
    before = _ls_state(ls_client, pid)
    assert ls_client.project(pid).label_config.strip() == build_label_config(v1).strip()

    # 2. a dry run says what would change and writes nothing
    dry = push_schema_version(ls_client, store, v2, "mig", known, migration, dry_run=True)
    assert dry.migrated is not None and dry.migrated.status == "planned"
    assert (dry.migrated.annotations, dry.migrated.rewritten) == (6, 5)
    assert dry.migrated.changes["categories: 'hallucination' -> 'fabrication'"] == 2
    assert dry.migrated.changes["categories: 'truncated' -> 'incomplete_answer'"] == 2
    assert _ls_state(ls_client, pid) == before
    assert store.migration_run(dry.migrated.run_id) is None
    cli_dry = CliRunner().invoke(main, [
        "schema", "push", str(SCHEMAS / "triage.v2.yaml"), "--queue", "mig", "--migration",
        str(SCHEMAS / "migrations" / "triage.v1-to-v2.yaml"), "--dry-run"])
    assert cli_dry.exit_code == 0, cli_dry.output
    assert "INCOMPATIBLE labels_merged" in cli_dry.output
    assert "planned: project" in cli_dry.output and "5 rewritten" in cli_dry.output
    assert "2 x categories: 'hallucination' -> 'fabrication'" in cli_dry.output
    assert cli_dry.output.rstrip().endswith("dry run: nothing was written")
    assert _ls_state(ls_client, pid) == before

    # 3. a crash half-way (the third annotation is written to Label Studio, its
    # done-marker is not), then a re-run that finishes the job
    def crash(applied: int, stage: str) -> None:
        if (applied, stage) == (3, "written"):
            raise Crash("injected")

    with pytest.raises(Crash):
        push_schema_version(ls_client, store, v2, "mig", known, migration, after_item=crash)
    half = _ls_state(ls_client, pid)
    assert sum(half[t][1] != before[t][1] for t in half) == 3  # three rewritten so far
    assert ls_client.project(pid).title == "llmtrace mig | triage@v1"  # config not yet moved
    # a sync in between still reads the project as v1: it keeps the new values aside
    [between] = sync_all(ls_client, store, known, [pid])
    assert between.rejected > 0
    done = push_schema_version(ls_client, store, v2, "mig", known, migration)
    assert done.migrated is not None and done.migrated.status == "done"
    assert done.migrated.rewritten == 5 and done.migrated.unchanged == 1
    outcomes = store.migration_outcomes(done.migrated.run_id)
    # the one written before the crash is found done, not written again
    assert outcomes == {"rewritten": 4, "already": 1, "unchanged": 1}

    project = ls_client.project(pid)
    assert project.title == "llmtrace mig | triage@v2"
    assert project.label_config.strip() == build_label_config(v2).strip()
    after = _ls_state(ls_client, pid)
    records = _records(store)
    for trace_id, (verdict, cats, stars, score) in V2_EXPECTED.items():
        assert _ls_values(after[trace_id][2]) == (verdict, cats, stars), trace_id
        version, label, labels, stored_score, _ = records[trace_id]
        assert (version, label, labels) == (2, verdict, cats), trace_id
        assert stored_score == (pytest.approx(score) if score is not None else None), trace_id
    assert store.projects()[0]["schema_version"] == 2
    [log] = store.applied_migrations()
    assert (log["project_id"], log["from_version"], log["to_version"]) == (pid, 1, 2)
    assert log["migration_name"].endswith("triage.v1-to-v2.yaml")

    # 4. a re-run changes nothing, in Label Studio or in the store; a sync writes nothing
    snapshot = _records(store)
    again = push_schema_version(ls_client, store, v2, "mig", known, migration)
    assert again.migrated is None and again.created is False
    assert again.note is not None and "already at triage@v2 (migrated " in again.note
    assert _ls_state(ls_client, pid) == after
    assert _records(store) == snapshot
    [resync] = sync_all(ls_client, store, known, [pid])
    assert resync.records_written == 0 and resync.rejected == 0
    assert len(store.applied_migrations()) == 1

    # 5. stars given under v2 land as 0.0-1.0 scores
    ls_client.sdk.annotations.create(id=tasks["mig-6"], result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "categories", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fabrication"]}},
        {"from_name": "score", "to_name": "answer", "type": "rating", "value": {"rating": 2}}])
    ls_client.sdk.annotations.create(id=tasks["mig-7"], result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "categories", "to_name": "answer", "type": "choices",
         "value": {"choices": ["hallucination"]}}])  # a v1 value after the move: kept aside
    [late] = sync_all(ls_client, store, known, [pid])
    assert late.records_written == 2 and late.rejected == 1
    records = _records(store)
    assert records["mig-6"][1:4] == ("fail", ["fabrication"], 0.25)
    kept = [r for r in store.rejected_results() if r["ls_project_id"] == pid]
    assert len(kept) == 1 and "'hallucination'" in kept[0]["reason"]
    assert json.loads(kept[0]["raw"])["value"]["choices"] == ["hallucination"]
    store.close()
