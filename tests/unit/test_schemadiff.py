"""schemadiff.py: a table of schema changes, each classified; CLI exit codes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.schema.diff import (
    EXIT_COMPATIBLE,
    EXIT_INCOMPATIBLE,
    EXIT_SAME,
    KINDS,
    diff_schemas,
    exit_code,
)
from ls_llmtrace.schema.model import AnnotationSchema, parse_schema

from .paths import LABEL_CONFIGS

OLD: dict[str, Any] = {
    "id": "t", "version": 1, "title": "T", "owner": "o@example.com",
    "fields": [
        {"type": "label", "values": ["pass", "fail"], "failing": ["fail"],
         "categories": ["hallucination", "incomplete", "truncated", "wrong"]},
        {"type": "score"},
        {"type": "explanation"},
        {"type": "spans", "labels": ["claim", "fact"], "targets": ["answer"]},
    ],
    "rubric": {"hallucination": {"definition": "Made up."},
               "incomplete": {"definition": "Leaves something out."}},
}


def _schema(raw: dict[str, Any]) -> AnnotationSchema:
    return parse_schema(yaml.safe_dump(raw), "t.yaml")


def _edit(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = copy.deepcopy(OLD)
    raw["version"] = 2
    fn(raw)
    return raw


def _cats(raw: dict[str, Any], cats: list[str]) -> None:
    raw["fields"][0]["categories"] = cats


def _rubric(raw: dict[str, Any], **entries: Any) -> None:
    raw["rubric"].update(entries)


def _merge_edit(raw: dict[str, Any]) -> None:
    _cats(raw, ["hallucination", "incomplete_answer", "wrong"])
    raw["rubric"].pop("incomplete")


MOVES_MERGE = {("categories", "incomplete"): ("merge", ("incomplete_answer",)),
               ("categories", "truncated"): ("merge", ("incomplete_answer",))}

# (case, edit, moves, expected kinds, expected compatible)
TABLE: list[tuple[str, Callable[[dict[str, Any]], None], Any, set[str], bool]] = [
    ("category added", lambda r: _cats(r, [*OLD["fields"][0]["categories"], "unsafe"]), None,
     {"label_added"}, True),
    ("verdict value added", lambda r: r["fields"][0].update(values=["pass", "fail", "unsure"]),
     None, {"label_added"}, True),
    ("field added", lambda r: r["fields"].append({"type": "corrected_output"}), None,
     {"field_added"}, True),
    ("rubric reworded", lambda r: _rubric(r, hallucination={"definition": "Invented."}), None,
     {"rubric_reworded"}, True),
    ("rubric entry added", lambda r: _rubric(r, wrong={"definition": "Wrong."}), None,
     {"rubric_added"}, True),
    ("owner changed", lambda r: r.update(owner="new@example.com"), None,
     {"metadata_changed"}, True),
    ("score step changed", lambda r: r["fields"][1].update(step=0.1), None,
     {"score_step_changed"}, True),
    ("span target added", lambda r: r["fields"][3].update(targets=["answer", "messages"]), None,
     {"span_target_added"}, True),
    ("categories reordered", lambda r: _cats(r, ["wrong", "hallucination", "incomplete",
                                                 "truncated"]), None,
     {"labels_reordered"}, True),
    ("verdict not required", lambda r: r["fields"][0].update(required=False), None,
     {"required_changed"}, True),
    ("field added with an option", lambda r: r["fields"].append(
        {"type": "corrected_output", "required_on_fail": True}), None, {"field_added"}, True),
    ("category removed", lambda r: _cats(r, ["hallucination", "incomplete", "truncated"]), None,
     {"label_removed"}, False),
    ("category renamed (same rubric)", lambda r: (
        _cats(r, ["fabrication", "incomplete", "truncated", "wrong"]),
        r["rubric"].pop("hallucination"), _rubric(r, fabrication={"definition": "Made up."})),
     None, {"label_renamed", "rubric_added", "rubric_removed"}, False),
    ("category renamed (case only)", lambda r: _cats(
        r, ["Hallucination", "incomplete", "truncated", "wrong"]) or r["rubric"].update(
        Hallucination=r["rubric"].pop("hallucination")), None,
     {"label_renamed", "rubric_added", "rubric_removed"}, False),
    ("categories merged", _merge_edit, MOVES_MERGE, {"labels_merged", "rubric_removed"}, False),
    ("category split", lambda r: _cats(r, ["hallucination", "incomplete", "truncated",
                                           "wrong_fact", "wrong_math"]),
     {("categories", "wrong"): ("split", ("wrong_fact", "wrong_math"))}, {"label_split"}, False),
    ("category dropped into another", lambda r: _cats(r, ["hallucination", "incomplete",
                                                          "wrong"]),
     {("categories", "truncated"): ("merge", ("incomplete",))}, {"labels_merged"}, False),
    ("category dropped", lambda r: _cats(r, ["hallucination", "incomplete", "truncated"]),
     {("categories", "wrong"): ("drop", ())}, {"label_dropped"}, False),
    ("span label removed", lambda r: r["fields"][3].update(labels=["claim"]), None,
     {"label_removed"}, False),
    ("field removed", lambda r: r["fields"].pop(2), None, {"field_removed"}, False),
    ("score to stars", lambda r: r["fields"][1].update(scale="rating"), None,
     {"score_scale_changed"}, False),
    ("star count changed", lambda r: r["fields"][1].update(scale="rating", max_rating=10), None,
     {"score_scale_changed"}, False),
    ("failing values changed", lambda r: r["fields"][0].update(
        values=["pass", "fail", "meh"], failing=["meh"]), None,
     {"label_added", "failing_changed"}, False),
    ("span target removed", lambda r: r["fields"][3].update(targets=["messages"]), None,
     {"span_target_removed", "span_target_added"}, False),
    ("schema id changed", lambda r: r.update(id="other"), None, {"schema_id_changed"}, False),
    ("first failing step asked", lambda r: r["fields"][0].update(first_failing_step=True), None,
     {"first_failing_step_changed"}, True),
]


@pytest.mark.parametrize(("case", "edit", "moves", "kinds", "compatible"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_change_table(case, edit, moves, kinds, compatible):
    changes = diff_schemas(_schema(OLD), _schema(_edit(edit)), moves)
    assert {c.kind for c in changes} == kinds, [c.line() for c in changes]
    assert all(c.compatible == KINDS[c.kind] for c in changes)
    assert all(c.compatible for c in changes) is compatible
    assert exit_code(changes) == (EXIT_COMPATIBLE if compatible else EXIT_INCOMPATIBLE)


def test_table_covers_at_least_ten_kinds():
    kinds = set().union(*(row[3] for row in TABLE))
    assert len(kinds) >= 10
    assert kinds == set(KINDS)  # every kind the module knows is exercised


def test_no_change():
    assert diff_schemas(_schema(OLD), _schema(OLD)) == []
    assert exit_code([]) == EXIT_SAME


def test_merge_details_name_sources_and_target():
    new = _schema(_edit(_merge_edit))
    (merged,) = [c for c in diff_schemas(_schema(OLD), new, MOVES_MERGE)
                 if c.kind == "labels_merged"]
    assert merged.old == ("incomplete", "truncated") and merged.new == ("incomplete_answer",)
    assert merged.group == "categories"
    # without a migration the same edit reads as two removals and an addition
    plain = [c.kind for c in diff_schemas(_schema(OLD), new)]
    assert sorted(plain) == ["label_added", "label_removed", "label_removed", "rubric_removed"]


def _write(tmp_path: Path, name: str, raw: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_cli_exit_codes(tmp_path):
    old = _write(tmp_path, "t.v1.yaml", OLD)
    same = CliRunner().invoke(main, ["schema", "diff", str(old), str(old)])
    assert same.exit_code == 0 and "ask the same" in same.output
    added = _write(tmp_path, "t.v2.yaml", _edit(lambda r: r["fields"].append(
        {"type": "corrected_output"})))
    compatible = CliRunner().invoke(main, ["schema", "diff", str(old), str(added)])
    assert compatible.exit_code == 1
    assert "compatible   field_added" in compatible.output
    removed = _write(tmp_path, "t.v3.yaml", _edit(lambda r: r["fields"].pop(2)))
    incompatible = CliRunner().invoke(main, ["schema", "diff", str(old), str(removed), "--json"])
    assert incompatible.exit_code == 4
    assert '"kind": "field_removed"' in incompatible.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [", encoding="utf-8")
    bad = CliRunner().invoke(main, ["schema", "diff", str(old), str(broken)])
    assert bad.exit_code == 2 and "not valid YAML" in bad.output


def test_checked_in_v1_to_v2():
    from ls_llmtrace.schema.model import load_schema

    changes = diff_schemas(load_schema(LABEL_CONFIGS / "default.v1.yaml"),
                           load_schema(LABEL_CONFIGS / "default.v2.yaml"))
    incompatible = [c.kind for c in changes if not c.compatible]
    assert incompatible == ["score_scale_changed"]


@pytest.mark.parametrize(("before", "after"), [(False, True), (True, False)])
def test_corrected_output_required_on_fail_is_compatible(before, after):
    old = copy.deepcopy(OLD)
    old["fields"].append({"type": "corrected_output", "required_on_fail": before})
    new = copy.deepcopy(old)
    new["version"] = 2
    new["fields"][-1]["required_on_fail"] = after
    changes = diff_schemas(_schema(old), _schema(new))
    assert [(c.kind, c.detail, c.compatible) for c in changes] == [(
        "required_changed",
        f"corrected output required on a failing verdict {before} -> {after}", True)]
    assert exit_code(changes) == EXIT_COMPATIBLE
