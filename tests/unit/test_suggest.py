"""schema suggest: failure clusters as new categories of a compatible next version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.planted_modes import planted
from tests.unit.paths import LABEL_CONFIGS

from ls_llmtrace.cli import main
from ls_llmtrace.evals.clusters import cluster_failures, failures_from_records, purity_recall
from ls_llmtrace.evals.suggest import TooFewReviewed, suggest_schema
from ls_llmtrace.schema.diff import is_compatible
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

NEW_MODES = {"wrong_language", "pii_leak"}


def test_uncategorized_clusters_become_new_categories_and_the_rest_match_existing():
    v2 = load_schema(LABEL_CONFIGS / "default.v2.yaml")
    traces, records, truth = planted(0)
    # The reviewers had no category for two of the modes.
    records = [r.model_copy(update={"labels": []}) if r.scope.kind == "trace"
               and truth.get(r.trace_id) in NEW_MODES else r for r in records]
    by_id = {t.trace_id: t for t in traces}
    failures, reviewed = failures_from_records(records, v2, by_id.get)
    report = cluster_failures(failures, seed=0)
    suggestion = suggest_schema(v2, report, reviewed)
    modes = {c.id: {truth[t] for t in c.trace_ids} for c in report.clusters}
    proposed = {row["cluster"] for row in suggestion.proposed}
    assert proposed and all(modes[c] <= NEW_MODES for c in proposed), (modes, proposed)
    assert {m for c in proposed for m in modes[c]} == NEW_MODES
    assert {row["category"] for row in suggestion.matched} <= set(v2.categories)
    assert len(suggestion.matched) + len(proposed) + len(suggestion.skipped) == report.k
    draft = suggestion.schema
    assert draft.version == 3 and draft.id == v2.id
    new = [c for c in draft.categories if c not in v2.categories]
    assert len(new) == len(proposed) and draft.categories[:len(v2.categories)] == v2.categories
    for name in new:
        entry = draft.rubric[name]
        assert entry.definition and entry.positive_examples
        # examples are quoted from the members' explanations
        cluster = next(r["cluster"] for r in suggestion.proposed if r["category"] == name)
        members = next(c for c in report.clusters if c.id == cluster)
        quoted = {f.explanation for f in failures if f.trace_id in members.trace_ids}
        assert set(entry.positive_examples) <= quoted
    assert is_compatible(suggestion.changes)
    assert sorted(c.kind for c in suggestion.changes) == \
        ["label_added"] * len(new) + ["rubric_added"] * len(new)


def test_too_few_reviewed_traces_is_said():
    v2 = load_schema(LABEL_CONFIGS / "default.v2.yaml")
    traces, records, _ = planted(0)
    by_id = {t.trace_id: t for t in traces}
    failures, _ = failures_from_records(records, v2, by_id.get)
    with pytest.raises(TooFewReviewed, match="only 29 reviewed traces"):
        suggest_schema(v2, cluster_failures(failures), reviewed=29)


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    shutil.copy(LABEL_CONFIGS / "default.v1.yaml", schemas / "default.v1.yaml")
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", "sqlite:///" + str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(schemas))
    return schemas


def _binary_queue(limit: int | None = None) -> dict[str, str]:
    """A v1 (pass/fail only) queue: the planted failures without categories or spans."""
    traces, records, truth = planted(0, schema_version=1)
    records = [r.model_copy(update={"labels": []}) for r in records if r.scope.kind == "trace"]
    records = records[:limit] if limit else records
    with Store() as store:
        store.set_queue("review", 1, "default", 1, "review", "llmtrace review | default@v1")
        store.upsert_traces(traces)
        with store.transaction() as conn:
            for r in records:
                Store.upsert_record(conn, r)
    return truth


def test_cli_writes_the_draft_beside_the_current_version_and_prints_the_diff(env):
    _binary_queue()
    result = CliRunner().invoke(main, ["schema", "suggest", "--queue", "review"])
    assert result.exit_code == 0, result.output
    draft_path = env / "default.v2.yaml"
    draft = load_schema(draft_path)
    assert draft.version == 2 and len(draft.categories) >= 5
    assert draft_path.read_text().startswith("# Draft default@v2 by `ls-llmtrace schema")
    for name in draft.categories:
        assert f"categories: {name!r} added" in result.output
    assert f"schema push {draft_path} --queue review" in result.output
    # the same as `schema diff` says: compatible (exit 1)
    diff = CliRunner().invoke(main, ["schema", "diff", str(env / "default.v1.yaml"),
                                     str(draft_path)])
    assert diff.exit_code == 1, diff.output
    again = CliRunner().invoke(main, ["schema", "suggest", "--queue", "review"])
    assert again.exit_code == 2 and "exists: choose another file with -o" in again.output
    other = env / "elsewhere.yaml"
    as_json = CliRunner().invoke(main, ["schema", "suggest", "--queue", "review", "-o",
                                        str(other), "--json"])
    assert as_json.exit_code == 0, as_json.output
    out = json.loads(as_json.output)
    assert out["version"] == "default@v2" and out["file"] == str(other)
    assert [r["category"] for r in out["proposed"]] == draft.categories


def test_cli_refuses_below_30_reviewed_traces(env):
    _binary_queue(limit=25)
    result = CliRunner().invoke(main, ["schema", "suggest", "--queue", "review"])
    assert result.exit_code == 4
    assert result.output.strip() == ("Error: only 25 reviewed traces: schema suggest needs 30 "
                                     "(review more traces or lower --min-reviewed)")
    assert not (env / "default.v2.yaml").exists()


def test_explanations_only_clusters_are_merged_into_about_one_per_planted_mode():
    """A binary queue (explanations only): KMeans by silhouette splits each mode by its
    phrasings (18 proposals for 7 modes before near-duplicate merging)."""
    v1 = load_schema(LABEL_CONFIGS / "default.v1.yaml")
    traces, records, truth = planted(0, schema_version=1)
    records = [r.model_copy(update={"labels": []}) for r in records if r.scope.kind == "trace"]
    by_id = {t.trace_id: t for t in traces}
    failures, reviewed = failures_from_records(records, v1, by_id.get)
    report = cluster_failures(failures, seed=0)
    suggestion = suggest_schema(v1, report, reviewed)
    modes = len(set(truth.values()))
    purity, recall = purity_recall(report.assignments, truth)
    assert len(suggestion.proposed) <= 1.5 * modes, len(suggestion.proposed)
    assert purity >= 0.8 and recall >= 0.7, (purity, recall)
    unmerged = cluster_failures(failures, seed=0, merge=None)
    assert report.k < unmerged.k
