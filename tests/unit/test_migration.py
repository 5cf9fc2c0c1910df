"""Schema migrations, the pure parts: migration files and their checks against two versions
(schema/migration.py), the rewrite of one annotation and orphan counting
(labelstudio/rewrite.py); and the store tables the journal needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.errors import MigrationError
from ls_llmtrace.labelstudio.rewrite import count_orphans, orphaned_values, rewrite_result
from ls_llmtrace.schema.migration import (
    check_migration,
    identity_migration,
    load_migration,
    parse_migration,
)
from ls_llmtrace.schema.model import AnnotationSchema, load_schema, parse_schema

from .paths import LABEL_CONFIGS, ROOT

SCHEMAS = ROOT / "tests" / "schemas"


@pytest.fixture(scope="module")
def v1() -> AnnotationSchema:
    return load_schema(SCHEMAS / "triage.v1.yaml")


@pytest.fixture(scope="module")
def v2() -> AnnotationSchema:
    return load_schema(SCHEMAS / "triage.v2.yaml")


def verdict(value: str) -> dict[str, Any]:
    return {"id": "v", "from_name": "verdict", "to_name": "answer", "type": "choices",
            "value": {"choices": [value]}}


def cats(*values: str) -> dict[str, Any]:
    return {"id": "c", "from_name": "categories", "to_name": "answer", "type": "choices",
            "value": {"choices": list(values)}}


def number(x: float) -> dict[str, Any]:
    return {"id": "s", "from_name": "score", "to_name": "answer", "type": "number",
            "value": {"number": x}}


def explanation(text: str) -> dict[str, Any]:
    return {"id": "e", "from_name": "explanation", "to_name": "answer", "type": "textarea",
            "value": {"text": [text]}}


def _migration(steps: str, accept: str = "") -> str:
    return f"schema: triage\nfrom_version: 1\nto_version: 2\nsteps:\n{steps}\n{accept}"


RENAME_MERGE = """\
  - rename: {field: categories, from: hallucination, to: fabrication}
  - merge: {field: categories, from: [incomplete, truncated], to: incomplete_answer}
  - rescale_score: {}
"""


def test_checked_in_migrations_fit_their_schemas():
    m = load_migration(LABEL_CONFIGS / "migrations" / "default.v1-to-v2.yaml")
    changes = check_migration(m, load_schema(LABEL_CONFIGS / "default.v1.yaml"),
                              load_schema(LABEL_CONFIGS / "default.v2.yaml"))
    assert "score_scale_changed" in {c.kind for c in changes}
    t = load_migration(SCHEMAS / "migrations" / "triage.v1-to-v2.yaml")
    kinds = {c.kind for c in check_migration(t, load_schema(SCHEMAS / "triage.v1.yaml"),
                                             load_schema(SCHEMAS / "triage.v2.yaml"))}
    assert {"label_renamed", "labels_merged", "score_scale_changed"} <= kinds


def test_rename_merge_rescale(v1, v2):
    m = parse_migration(_migration(RENAME_MERGE))
    out = rewrite_result([verdict("fail"), cats("hallucination", "incomplete", "truncated"),
                          number(0.5), explanation("made up")], v1, v2, m)
    assert out.result == [verdict("fail"), cats("fabrication", "incomplete_answer"),
                          {**number(0), "type": "rating", "value": {"rating": 3}},
                          explanation("made up")]
    assert out.changes == ["categories: 'hallucination' -> 'fabrication'",
                           "categories: 'incomplete' -> 'incomplete_answer'",
                           "categories: 'truncated' -> 'incomplete_answer'",
                           "score: 0.5 -> 3 stars"]
    assert out.reviews == []


def test_rewrite_is_not_applied_twice(v1, v2):
    """Rewriting an already migrated result changes nothing (values are v2 already)."""
    m = parse_migration(_migration(RENAME_MERGE))
    once = rewrite_result([cats("hallucination"), number(1.0)], v1, v2, m).result
    twice = rewrite_result(once, v1, v2, m)
    assert twice.result == once and twice.changes == []


def test_drift_left_alone(v1, v2):
    m = parse_migration(_migration(RENAME_MERGE))
    weird = [cats("rude"), {"from_name": "tone", "type": "choices", "value": {"choices": ["x"]}},
             {**number(0), "value": {"number": "high"}}]
    assert rewrite_result(weird, v1, v2, m).result == weird


SPLIT = """\
  - rename: {field: categories, from: hallucination, to: fabrication}
  - split: {field: categories, from: incomplete, otherwise: null, rules: [
      {to: incomplete_answer, explanation_matches: "(?i)missing|left out"},
      {to: off_topic, score_below: 0.2}]}
  - drop: {field: categories, value: truncated, into: incomplete_answer}
  - rescale_score: {}
"""


def test_split_by_rule_and_into_the_review_queue(v1, v2):
    m = parse_migration(_migration(SPLIT))
    by_text = rewrite_result([cats("incomplete"), explanation("Step 3 is missing")], v1, v2, m)
    assert by_text.result[0]["value"]["choices"] == ["incomplete_answer"]
    by_score = rewrite_result([cats("incomplete"), number(0.1)], v1, v2, m)
    assert by_score.result[0]["value"]["choices"] == ["off_topic"]
    unsure = rewrite_result([verdict("fail"), cats("incomplete"), number(0.9)], v1, v2, m)
    assert [r["from_name"] for r in unsure.result] == ["verdict", "score"]  # category gone
    (review,) = unsure.reviews
    assert (review.field, review.value) == ("categories", "incomplete")
    assert "no split rule" in review.reason and "'incomplete_answer'" in review.reason
    assert review.raw == cats("incomplete")
    dropped = rewrite_result([cats("truncated", "off_topic")], v1, v2, m)
    assert dropped.result[0]["value"]["choices"] == ["incomplete_answer", "off_topic"]


def test_split_otherwise_value(v1, v2):
    steps = SPLIT.replace("otherwise: null", "otherwise: incomplete_answer")
    m = parse_migration(_migration(steps))
    out = rewrite_result([cats("incomplete"), number(0.9)], v1, v2, m)
    assert out.result[0]["value"]["choices"] == ["incomplete_answer"] and not out.reviews


def test_drop_field_and_removed_value():
    old = parse_schema("""
id: triage
version: 1
owner: o
fields:
  - {type: label, categories: [a, b]}
  - {type: explanation}
""")
    new = parse_schema("""
id: triage
version: 2
owner: o
fields:
  - {type: label, categories: [a]}
""")
    m = parse_migration(_migration("  - drop: {field: categories, value: b}\n"
                                   "  - drop_field: {type: explanation}"))
    check_migration(m, old, new)
    out = rewrite_result([verdict("fail"), cats("b"), explanation("x")], old, new, m)
    assert out.result == [verdict("fail")]
    assert out.changes == ["categories: 'b' -> (removed)", "explanation: field dropped"]


def test_stars_back_to_numbers():
    old = parse_schema("id: s\nversion: 1\nowner: o\nfields: [{type: score, scale: rating}]")
    new = parse_schema("id: s\nversion: 2\nowner: o\nfields: [{type: score}]")
    m = parse_migration("schema: s\nfrom_version: 1\nto_version: 2\nsteps: [rescale_score: {}]")
    stars = {"from_name": "score", "type": "rating", "value": {"rating": 4}}
    out = rewrite_result([stars], old, new, m)
    assert out.result == [{"from_name": "score", "type": "number", "value": {"number": 0.75}}]


@pytest.mark.parametrize(("steps", "expected"), [
    ("  - rescale_score: {}", "'hallucination' -> 'fabrication' (same rubric): add a rename"),
    (RENAME_MERGE.replace("  - rescale_score: {}\n", ""), "add `rescale_score: {}`"),
    (RENAME_MERGE + "  - rename: {field: categories, from: nope, to: fabrication}",
     "not a value of triage@v1"),
    (RENAME_MERGE.replace("to: fabrication", "to: invented"), "'invented': not a value of "
     "triage@v2"),
    (RENAME_MERGE + "  - drop: {field: verdict, value: pass}", "needs `into`"),
    (RENAME_MERGE + "  - drop_field: {type: explanation}", "triage@v2 still has it"),
])
def test_migration_that_does_not_fit_is_refused(v1, v2, steps, expected):
    m = parse_migration(_migration(steps), "m.yaml")
    with pytest.raises(MigrationError) as info:
        check_migration(m, v1, v2)
    assert str(info.value).startswith("m.yaml does not fit triage@v1 -> triage@v2: ")
    assert expected in str(info.value)


def test_removed_value_without_a_step_is_named(v1, v2):
    m = parse_migration(_migration(RENAME_MERGE.replace(
        "  - merge: {field: categories, from: [incomplete, truncated], to: incomplete_answer}\n",
        "")), "m.yaml")
    with pytest.raises(MigrationError, match="'incomplete' removed: say where its annotations"):
        check_migration(m, v1, v2)


def test_wrong_versions_refused(v1, v2):
    m = parse_migration("schema: triage\nfrom_version: 2\nto_version: 3\nsteps: []", "m.yaml")
    with pytest.raises(MigrationError, match="project is at triage@v1"):
        check_migration(m, v1, v2)


def test_failing_change_must_be_accepted():
    old = parse_schema("id: f\nversion: 1\nowner: o\nfields: [{type: label, values: [ok, meh, "
                       "bad], failing: [bad]}]")
    new = parse_schema("id: f\nversion: 2\nowner: o\nfields: [{type: label, values: [ok, meh, "
                       "bad], failing: [meh, bad]}]")
    plain = "schema: f\nfrom_version: 1\nto_version: 2\n"
    with pytest.raises(MigrationError, match="failing_changed"):
        check_migration(parse_migration(plain), old, new)
    check_migration(parse_migration(plain + "accept: [failing_changed]"), old, new)


@pytest.mark.parametrize(("text", "expected"), [
    ("schema: t\nfrom_version: 1\nto_version: 2\nsteps: [{rename: {field: categories, "
     "from: a, to: b}, drop_field: {type: score}}]", "exactly one action"),
    ("schema: t\nfrom_version: 1\nto_version: 2\nsteps: [{rename: {field: tone, from: a, "
     "to: b}}]", "steps.0.rename.field"),
    ("schema: t\nfrom_version: 1\nto_version: 2\nsteps: [{split: {field: categories, from: a, "
     "rules: [{to: b}]}}]", "has no condition"),
    ("schema: t\nfrom_version: 1\nto_version: 2\nsteps: [{split: {field: categories, from: a, "
     "rules: [{to: b, explanation_matches: '('}]}}]", "bad regex"),
    ("schema: t\nfrom_version: 1\nto_version: 2\nsteps: [{rename: {field: categories, from: a, "
     "to: b}}, {drop: {field: categories, value: a}}]", "moved by two steps"),
    ("schema: t\nfrom_version: 1\nto_version: 2\ncolour: red", "colour"),
    ("[1, 2]", "must be a YAML mapping"),
    ("schema: [", "not valid YAML"),
])
def test_bad_migration_files(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MigrationError) as info:
        load_migration(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_missing_migration_file(tmp_path):
    with pytest.raises(MigrationError, match="cannot read migration file"):
        load_migration(tmp_path / "nope.yaml")


def test_orphaned_values(v2):
    found = orphaned_values([verdict("fail"), cats("hallucination", "off_topic"), number(0.4),
                             explanation("x")], v2)
    assert found == ["categories 'hallucination'", "score as number (now rating 1-5)"]
    report = count_orphans([{"result": [cats("hallucination")]}, {"result": [cats("truncated",
                           "hallucination")]}, {"result": [verdict("pass")]}], v2)
    assert (report.annotations, report.total) == (2, 3)
    assert report.line() == ("2 of 3 annotations would be orphaned: categories "
                             "'hallucination' (2), categories 'truncated' (1)")


def test_identity_migration_keeps_values(v1):
    newer = v1.model_copy(update={"version": 2, "title": "Renamed title"})
    m = identity_migration(v1, newer)
    result = [verdict("fail"), cats("hallucination"), number(0.3)]
    assert rewrite_result(result, v1, newer, m).result == result
    assert check_migration(m, v1, newer)[0].kind == "metadata_changed"


def test_sha_ignores_file_name():
    a = parse_migration(_migration(RENAME_MERGE), "a.yaml")
    b = parse_migration(_migration(RENAME_MERGE), "b.yaml")
    c = parse_migration(_migration(SPLIT), "a.yaml")
    assert a.sha() == b.sha() != c.sha()


def test_store_has_the_journal_tables(store):
    tables = set(store.tables())
    assert {"schema_migration_runs", "schema_migration_items",
            "schema_migration_reviews"} <= tables
    names = [r["name"] for r in store.conn.execute("SELECT name FROM migrations")]
    assert "0300_schema_migration_journal" in names


def test_retire_records_except(store):
    from ls_llmtrace.models import AnnotationRecord, Scope, Source

    def rec(key: str) -> AnnotationRecord:
        return AnnotationRecord(record_key=key, trace_id="t", schema_id="s", schema_version=1,
                                source=Source.reviewer, ls_project_id=1, ls_task_id=2,
                                ls_annotation_id=3, scope=Scope(kind="trace"))

    with store.transaction() as conn:
        for key in ("ls:1:3", "ls:1:3:a", "ls:1:3:b"):
            store.upsert_record(conn, rec(key))
    with store.transaction() as conn:
        assert store.retire_records_except(conn, 1, 3, {"ls:1:3", "ls:1:3:a"}) == 1
        assert store.retire_records_except(conn, 1, 3, {"ls:1:3", "ls:1:3:a"}) == 0
    assert [r.record_key for r in store.records()] == ["ls:1:3", "ls:1:3:a"]
    (gone,) = [r for r in store.records(include_deleted=True) if r.deleted]
    assert gone.record_key == "ls:1:3:b"


def test_value_that_is_not_an_object_is_drift(v1, v2):
    """Planning and orphan counting used to raise on ``"value": "x"``; it is left as is."""
    m = parse_migration(_migration(RENAME_MERGE))
    weird = [{**cats("x"), "value": "hallucination"}, {**number(0), "value": ["0.5"]}]
    out = rewrite_result(weird, v1, v2, m)
    assert out.result == weird and out.changes == []
    assert orphaned_values(weird, v2) == ["score as number (now rating 1-5)"]


def test_journal_store_methods(store):
    """A run through the journal's Store methods: plan, resume, done-markers, log, reviews
    (on both engines)."""
    from ls_llmtrace.store.journal import MigrationReview, MigrationRun, PlannedItem

    run = MigrationRun("7:t@v1->t@v2", 7, "q", "t", 1, 2, "m.yaml", "abc",
                       planned_at="2026-01-01T00:00:00+00:00")
    items = [PlannedItem(2, 20, {"task": {"id": 20}, "annotation": {"id": 2}}, [cats("b")], [],
                         True),
             PlannedItem(1, 10, {"task": {"id": 10}, "annotation": {"id": 1}}, [], [
                 {"field": "categories", "value": "a", "reason": "r", "raw": cats("a")}], False)]
    with store.transaction() as conn:
        store.start_migration_run(conn, run)
        store.plan_migration_items(conn, run.run_id, items)
        store.plan_migration_items(conn, run.run_id, [PlannedItem(1, 10, {}, [], [], True)])
    assert store.migration_run(run.run_id) == run
    assert store.migration_planned_ids(run.run_id) == {1, 2}
    assert store.migration_pending(run.run_id) == sorted(items, key=lambda i: i.annotation_id)
    with store.transaction() as conn:
        store.add_migration_review(conn, run.run_id, 1, 10,
                                   MigrationReview("categories", "a", "r", cats("a")))
        store.finish_migration_item(conn, run.run_id, 1, "unchanged")
    assert [i.annotation_id for i in store.migration_pending(run.run_id)] == [2]
    assert store.migration_outcomes(run.run_id) == {"unchanged": 1, "None": 1}
    assert store.applied_migrations() == []
    with store.transaction() as conn:
        store.finish_migration_run(conn, run.run_id, {"annotations": 2})
    (logged,) = store.applied_migrations()
    assert logged["migration_name"] == "m.yaml" and logged["summary"] == '{"annotations": 2}'
    assert store.migration_run(run.run_id).status == "done"
    (review,) = store.migration_reviews(run.run_id)
    assert (review["field"], review["value"], review["task_id"]) == ("categories", "a", 10)
    assert store.migration_reviews("other") == []


def step_mark(index: int, *values: str) -> dict[str, Any]:
    return {"id": f"step{index}", "from_name": f"step_labels_{index}", "to_name": f"step_{index}",
            "type": "choices", "value": {"choices": list(values)}}


def test_agent_step_marks_move_with_the_categories(v1, v2):
    m = parse_migration(_migration(RENAME_MERGE))
    out = rewrite_result([verdict("fail"), step_mark(1, "hallucination", "truncated")],
                         v1, v2, m)
    assert out.result == [verdict("fail"), step_mark(1, "fabrication", "incomplete_answer")]
    # without the migration the old categories on a step are what a push would orphan
    assert orphaned_values([step_mark(2, "hallucination")], v2) == [
        "categories 'hallucination'"]
    assert orphaned_values([step_mark(2, "fabrication")], v2) == []
