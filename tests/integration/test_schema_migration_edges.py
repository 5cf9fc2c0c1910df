"""Schema migrations against a real Label Studio, the awkward cases: a removed control (Label
Studio answers 400) and a removed label value (Label Studio silently accepts), splits into
the review queue, an annotation edited while a migration was half-done, and one created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from label_studio_sdk.core.api_error import ApiError

from ls_llmtrace import settings
from ls_llmtrace.cli import main
from ls_llmtrace.errors import MigrationRequired
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Trace
from ls_llmtrace.records.migrate import push_schema_version
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.labelconfig import build_label_config
from ls_llmtrace.schema.migration import parse_migration
from ls_llmtrace.schema.model import parse_schema
from ls_llmtrace.store import Store


class Crash(Exception):
    """Raised from the ``after_item`` callback to stop a migration half-way."""


V1 = """
id: edge
version: 1
owner: lead@example.com
fields:
  - {type: label, values: [pass, fail], categories: [wrong, vague, other]}
  - {type: explanation}
"""
V2 = """
id: edge
version: 2
owner: lead@example.com
fields:
  - {type: label, values: [pass, fail], categories: [wrong_fact, wrong_math, vague]}
"""
MIGRATION = """
schema: edge
from_version: 1
to_version: 2
steps:
  - split: {field: categories, from: wrong, otherwise: null, rules: [
      {to: wrong_math, explanation_matches: "\\\\d"},
      {to: wrong_fact, explanation_matches: "(?i)fact"}]}
  - drop: {field: categories, value: other, into: vague}
  - drop_field: {type: explanation}
"""


def _result(categories: list[str], explanation: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "categories", "to_name": "answer", "type": "choices",
         "value": {"choices": categories}}]
    if explanation is not None:
        out.append({"from_name": "explanation", "to_name": "answer", "type": "textarea",
                    "value": {"text": [explanation]}})
    return out


def _categories(client: LabelStudioClient, annotation_id: int) -> list[str] | None:
    result = client.sdk.annotations.get(id=annotation_id).result or []
    found = [r["value"]["choices"] for r in result if r["from_name"] == "categories"]
    return found[0] if found else None


def test_removed_control_and_value_splits_and_concurrent_edits(
        ls_client: LabelStudioClient, ls_env: Path, tmp_path: Path) -> None:
    v1, v2 = parse_schema(V1, "edge.v1.yaml"), parse_schema(V2, "edge.v2.yaml")
    migration = parse_migration(MIGRATION, "edge.v1-to-v2.yaml")
    known = {("edge", 1): v1, ("edge", 2): v2}
    store = Store(settings.db_url())
    pid = import_traces(ls_client, store, [Trace(trace_id=f"edge-{i}", output=f"a{i}")
                                           for i in range(6)], queue="edge", schema=v1).project_id
    tasks = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}
    ids = {}
    for trace, cats, text in [("edge-0", ["wrong"], "2 + 2 is not 5"),
                              ("edge-1", ["wrong"], "a false fact"),
                              ("edge-2", ["wrong"], "just wrong"),
                              ("edge-3", ["other", "vague"], None),
                              ("edge-4", ["vague"], "unclear")]:
        ids[trace] = ls_client.sdk.annotations.create(id=tasks[trace],
                                                      result=_result(cats, text)).id
    sync_all(ls_client, store, known, [pid])

    # What Label Studio itself does (on a scratch project): a config without a Choices
    # control that annotations use is refused (400); one without a label value they use is
    # accepted, leaving the annotations with a value the config lacks. (A removed TextArea
    # is accepted too: Label Studio skips textareas in that check.)
    scratch = import_traces(ls_client, store, [Trace(trace_id="edge-scratch", output="x")],
                            queue="edge-scratch", schema=v1).project_id
    [(scratch_task, _)] = list(ls_client.task_trace_ids(scratch))
    ls_client.sdk.annotations.create(id=scratch_task, result=_result(["other"], "x"))
    config = build_label_config(v1)
    start = config.index('  <Choices name="categories"')
    no_categories = config[:start] + config[config.index("</Choices>", start) + 11:]
    assert 'name="categories"' not in no_categories
    with pytest.raises(ApiError) as refused:
        ls_client.sdk.projects.update(id=scratch, label_config=no_categories)
    assert refused.value.status_code == 400
    fewer = config.replace('    <Choice value="other" />\n', "")
    assert fewer != config
    ls_client.sdk.projects.update(id=scratch, label_config=fewer)  # accepted: no error
    assert 'value="other"' not in ls_client.project(scratch).label_config
    # ours refuses both and says what would be orphaned
    with pytest.raises(MigrationRequired) as ours:
        push_schema_version(ls_client, store, v2, "edge", known)
    assert "5 of 5 annotations would be orphaned" in str(ours.value)
    assert "explanation (field removed) (4)" in str(ours.value)
    assert "categories 'wrong' (3)" in str(ours.value)

    # crash after the first annotation; meanwhile a reviewer edits a planned one and
    # annotates a new task
    def crash(applied: int, stage: str) -> None:
        if (applied, stage) == (1, "done"):
            raise Crash("injected")

    with pytest.raises(Crash):
        push_schema_version(ls_client, store, v2, "edge", known, migration, after_item=crash)
    ls_client.sdk.annotations.update(id=ids["edge-4"], result=_result(["other"], "changed"))
    ids["edge-5"] = ls_client.sdk.annotations.create(
        id=tasks["edge-5"], result=_result(["other"], "late")).id
    done = push_schema_version(ls_client, store, v2, "edge", known, migration)
    assert done.migrated is not None and done.migrated.status == "done"
    assert done.migrated.conflicts == 1 and done.migrated.annotations == 6

    project = ls_client.project(pid)
    assert project.label_config.strip() == build_label_config(v2).strip()  # 400 avoided
    assert _categories(ls_client, ids["edge-0"]) == ["wrong_math"]
    assert _categories(ls_client, ids["edge-1"]) == ["wrong_fact"]
    assert _categories(ls_client, ids["edge-2"]) is None  # sent to the review queue
    assert _categories(ls_client, ids["edge-3"]) == ["vague"]  # other dropped into vague
    assert _categories(ls_client, ids["edge-4"]) == ["other"]  # edited meanwhile: untouched
    assert _categories(ls_client, ids["edge-5"]) == ["vague"]  # created after planning
    for trace, annotation_id in ids.items():  # explanation dropped, except where edited
        names = [r["from_name"] for r in ls_client.sdk.annotations.get(id=annotation_id).result]
        assert ("explanation" in names) == (trace == "edge-4"), trace
    reviews = {(r["annotation_id"], r["field"], r["value"]) for r in store.migration_reviews()}
    assert reviews == {(ids["edge-2"], "categories", "wrong"),
                       (ids["edge-4"], "annotation", "*")}
    records = {r.trace_id: r for r in store.records()}
    assert records["edge-0"].labels == ["wrong_math"] and records["edge-0"].schema_version == 2
    assert records["edge-0"].explanation is None
    assert records["edge-2"].labels == [] and records["edge-2"].label == "fail"

    # the CLI shows the log and the review queue; the edited annotation is kept aside on sync
    log = CliRunner().invoke(main, ["schema", "migrations"])
    assert log.exit_code == 0 and "edge v1 -> v2" in log.output
    queue = CliRunner().invoke(main, ["schema", "migrations", "--reviews"])
    assert "no split rule of categories 'wrong' matched" in queue.output
    assert "edited after the migration was planned" in queue.output
    [after] = sync_all(ls_client, store, known, [pid])
    kept = {r["ls_annotation_id"] for r in store.rejected_results()}
    assert ids["edge-4"] in kept and after.rejected == 2  # 'other' and the explanation
    store.close()


V3 = V2.replace("version: 2", "version: 3").replace("vague]", "vague, unsafe]")


def test_compatible_version_moves_the_project_in_place(
        ls_client: LabelStudioClient, ls_env: Path) -> None:
    v2, v3 = parse_schema(V2, "edge.v2.yaml"), parse_schema(V3, "edge.v3.yaml")
    known = {("edge", 2): v2, ("edge", 3): v3}
    store = Store(settings.db_url())
    pid = import_traces(ls_client, store, [Trace(trace_id="c-0", output="a")],
                        queue="compat", schema=v2).project_id
    [(task, _)] = list(ls_client.task_trace_ids(pid))
    annotation = ls_client.sdk.annotations.create(id=task, result=_result(["vague"], None))
    sync_all(ls_client, store, known, [pid])
    before = ls_client.sdk.annotations.get(id=annotation.id)
    outcome = push_schema_version(ls_client, store, v3, "compat", known)
    assert outcome.project_id == pid and not outcome.created
    assert {c.kind for c in outcome.changes} == {"label_added"}
    assert outcome.migrated is not None and outcome.migrated.unchanged == 1
    assert outcome.migrated.rewritten == 0
    after = ls_client.sdk.annotations.get(id=annotation.id)
    assert after.updated_at == before.updated_at  # annotations untouched
    assert ls_client.project(pid).title == "llmtrace compat | edge@v3"
    [record] = store.records()
    assert (record.schema_version, record.labels) == (3, ["vague"])
    assert [p["schema_version"] for p in store.projects() if p["project_id"] == pid] == [3]
    store.close()


def test_a_push_gives_tasks_converted_before_the_review_screen_its_keys(
        ls_client: LabelStudioClient, ls_env: Path) -> None:
    """A task imported by an older release (no metadata text, no sections) shows its
    metadata, system prompt and documents again once a schema push rewrites the config:
    the push fills the keys in from the task's own data, once."""
    store = Store(settings.db_url())
    schema = parse_schema(V1, "edge.v1.yaml")
    pid = import_traces(ls_client, store, [Trace(trace_id="fresh", output="a")],
                        queue="screen-keys", schema=schema).project_id
    old_data = {"trace_id": "old-1", "schema_version": schema.version_id,
                "system_prompt": "Be brief.\n  - indented",
                "answer": "def f():\n    x = 1\n    return x\n",
                "messages": [{"role": "user", "content": "hi"}],
                "documents": [{"title": "document 1", "content": "doc text"}],
                "tool_calls": [{"name": "(none)", "content": "no tool calls"}],
                "metadata": {"trace_id": "old-1", "model": "m-1"}}
    # as an older release left it: a config that needs none of the new keys, its task
    old_config = ('<View><Text name="answer" value="$answer"/><Choices name="verdict" '
                  'toName="answer"><Choice value="pass"/><Choice value="fail"/></Choices>'
                  '</View>')
    ls_client.sdk.projects.update(id=pid, label_config=old_config)
    ls_client.import_tasks(pid, [{"data": old_data}])
    first = push_schema_version(ls_client, store, schema, "screen-keys",
                                {("edge", 1): schema})
    assert first.tasks_filled == 1
    tasks = {t["data"]["trace_id"]: t["data"] for t in ls_client.all_tasks(pid)}
    old = tasks["old-1"]
    assert old["metadata_text"].splitlines() == ["trace_id  old-1", "model     m-1"]
    assert old["sections"]["system_prompt"] == [1]
    assert old["sections"]["documents"] == [0]
    assert old["sections"]["answer_code"] == [1]
    assert old["steps"] == [] and old["answer"] == old_data["answer"]
    assert tasks["fresh"]["metadata_text"].startswith("trace id")  # converted with them
    again = push_schema_version(ls_client, store, schema, "screen-keys",
                                {("edge", 1): schema})
    assert again.tasks_filled == 0
