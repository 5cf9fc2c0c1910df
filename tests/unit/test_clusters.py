"""Failure clusters: the failure texts, the planted modes found again, stability, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.planted_modes import MODES, planted
from tests.unit.paths import LABEL_CONFIGS

from ls_llmtrace.cli import main
from ls_llmtrace.evals import clusters as cl
from ls_llmtrace.evals.clusters import (
    TooFewFailures,
    cluster_failures,
    failures_from_records,
    output_diff,
    purity_recall,
)
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.schema.model import AnnotationSchema, load_schema
from ls_llmtrace.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def v2() -> AnnotationSchema:
    return load_schema(LABEL_CONFIGS / "default.v2.yaml")


def _planted_failures(v2: AnnotationSchema, seed: int = 0):
    traces, records, truth = planted(seed)
    by_id = {t.trace_id: t for t in traces}
    failures, reviewed = failures_from_records(records, v2, by_id.get)
    return failures, reviewed, truth


def _rec(key: str, trace_id: str, label: str | None, minutes: int = 0,
         **extra) -> AnnotationRecord:
    when = T0 + timedelta(minutes=minutes)
    return AnnotationRecord(**{"record_key": key, "trace_id": trace_id, "schema_id": "default",
                               "schema_version": 2, "source": Source.reviewer,
                               "label": label, "created_at": when, "updated_at": when,
                               "ls_project_id": 1, **extra})


def test_output_diff_gives_the_words_the_correction_removed_and_added():
    assert output_diff("The launch was in 2019 in Paris.", "The launch was in 2021 in Paris.") \
        == (["2019"], ["2021"])
    assert output_diff("same", None) == ([], [])


def test_failure_text_has_explanation_categories_spans_quotes_and_the_diff(v2):
    trace = Trace(trace_id="t1", output="Open 24h every day.")
    records = [
        _rec("ls:1:1", "t1", "fail", labels=["hallucination"], explanation="Invented hours.",
             corrected_output="Open 9-17 on weekdays."),
        _rec("ls:1:1:s0", "t1", None, labels=["unsupported_claim"],
             scope=Scope(kind="text_range", target="answer", start=0, end=8, text="Open 24h")),
        # an older review of the same trace, and a passing trace: neither is a failure here
        _rec("ls:1:0", "t1", "pass", minutes=-5),
        _rec("ls:1:2", "t2", "pass"),
    ]
    failures, reviewed = failures_from_records(records, v2, {"t1": trace}.get)
    assert reviewed == 2
    (failure,) = failures
    assert failure.trace_id == "t1" and failure.span_labels == ("unsupported_claim",)
    for part in ("Invented hours.", "hallucination", "unsupported claim", "Open 24h",
                 "24h every day", "9-17 on weekdays"):
        assert part in failure.text


def test_ground_truth_decides_over_a_later_review(v2):
    records = [_rec("ls:1:1", "t1", "pass", ground_truth=True),
               _rec("ls:1:2", "t1", "fail", minutes=10, explanation="later")]
    assert failures_from_records(records, v2, lambda _: None)[0] == []


def test_planted_modes_are_found_again_pure_and_recalled(v2):
    failures, _, truth = _planted_failures(v2)
    report = cluster_failures(failures, seed=0)
    assert report.method == "wordllama" and report.fallback_reason is None
    purity, recall = purity_recall(report.assignments, truth)
    assert purity >= 0.8 and recall >= 0.8, (purity, recall)
    assert report.k >= len(MODES) - 1
    biggest = report.clusters[0]
    assert biggest.size == max(c.size for c in report.clusters)
    assert sum(c.size for c in report.clusters) == len(failures)
    assert abs(sum(c.share for c in report.clusters) - 1) < 0.01
    # every example is a member, quoted with its explanation
    for c in report.clusters:
        assert c.name and c.examples
        for ex in c.examples:
            assert ex["trace_id"] in c.trace_ids and ex["explanation"]


def test_a_mode_that_leans_to_a_product_area_shows_its_lift(v2):
    failures, _, truth = _planted_failures(v2)
    report = cluster_failures(failures, seed=0)
    # The pii_leak mode is planted 80% in "accounts" (1 of 7 areas otherwise).
    leak = max(report.clusters, key=lambda c: sum(truth[t] == "pii_leak" for t in c.trace_ids))
    top = leak.concentrations["product_area"][0]
    assert top["value"] == "accounts" and top["lift"] > 2


def test_tfidf_fallback_is_used_and_said_when_wordllama_cannot_load(v2, monkeypatch):
    def broken():
        raise OSError("weights missing")
    monkeypatch.setattr(cl, "_wordllama", broken)
    failures, _, truth = _planted_failures(v2)
    report = cluster_failures(failures, seed=0)
    assert report.method == "tfidf" and "weights missing" in (report.fallback_reason or "")
    purity, _ = purity_recall(report.assignments, truth)
    assert purity >= 0.8
    with pytest.raises(Exception, match="wordllama cannot load"):
        cluster_failures(failures, seed=0, method="wordllama")


def test_same_seed_same_clusters_whatever_the_input_order(v2):
    failures, _, _ = _planted_failures(v2, seed=3)
    first = cluster_failures(failures, seed=7)
    again = cluster_failures(list(reversed(failures)), seed=7)
    assert first.assignments == again.assignments
    assert [c.name for c in first.clusters] == [c.name for c in again.clusters]


def test_too_few_failures_is_refused(v2):
    failures, _, _ = _planted_failures(v2)
    with pytest.raises(TooFewFailures, match="too few failures to cluster: 9"):
        cluster_failures(failures[:9])
    assert cluster_failures(failures[:10]).failures == 10


def test_purity_recall_of_a_known_assignment():
    truth = {"a": "x", "b": "x", "c": "y", "d": "y"}
    assert purity_recall({"a": "1", "b": "1", "c": "2", "d": "2"}, truth) == (1.0, 1.0)
    assert purity_recall({"a": "1", "b": "1", "c": "1", "d": "1"}, truth) == (0.5, 0.5)


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", "sqlite:///" + str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(LABEL_CONFIGS))
    return tmp_path


def _fill_store(records: list[AnnotationRecord], traces: list[Trace]) -> None:
    with Store() as store:
        store.set_queue("review", 1, "default", 2, "review", "llmtrace review | default@v2")
        store.upsert_traces(traces)
        with store.transaction() as conn:
            for r in records:
                Store.upsert_record(conn, r)


def test_cli_clusters_a_queue_from_the_store(env):
    traces, records, truth = planted(0)
    # a record of another project (another queue) is not this queue's
    stray = records[0].model_copy(update={"record_key": "ls:9:1", "trace_id": "other",
                                          "ls_project_id": 9})
    _fill_store([*records, stray], traces)
    result = CliRunner().invoke(main, ["clusters", "--queue", "review", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["failures"] == len(truth) and out["reviewed"] == len(truth) + 10
    assigned = {t: c["id"] for c in out["clusters"] for t in c["trace_ids"]}
    assert "other" not in assigned
    assert purity_recall(assigned, truth)[0] >= 0.8
    text = CliRunner().invoke(main, ["clusters", "--queue", "review"])
    assert text.exit_code == 0 and text.output.startswith(
        f"queue review: {len(truth)} failures of {len(truth) + 10} reviewed traces")
    assert "c1 " in text.output and "product_area:" in text.output


def test_cli_says_too_few_in_one_line_and_exits_4(env):
    traces, records, _ = planted(0)
    keep = {t.trace_id for t in traces[:5]}
    _fill_store([r for r in records if r.trace_id in keep], traces[:5])
    result = CliRunner().invoke(main, ["clusters", "--queue", "review"])
    assert result.exit_code == 4
    assert result.output.strip().splitlines() == [
        "Error: too few failures to cluster: 5 (need 10; review more traces or lower --min)"]


def test_cli_unknown_queue_is_a_config_error(env):
    result = CliRunner().invoke(main, ["clusters", "--queue", "nope"])
    assert result.exit_code == 2 and "not in the store" in result.output


def _dated(records: list[AnnotationRecord], truth: dict[str, str],
           new_mode: str) -> list[AnnotationRecord]:
    """Failures spread over 60 days; ``new_mode`` only in the last 5."""
    out = []
    for i, r in enumerate(records):
        days = 55 + (i % 5) if truth.get(r.trace_id) == new_mode else (i * 37) % 50
        when = T0 + timedelta(days=days, minutes=i)
        out.append(r.model_copy(update={"created_at": when, "updated_at": when}))
    return out


def test_a_new_cluster_growing_in_recent_failures_is_flagged(v2):
    traces, records, truth = planted(0)
    by_id = {t.trace_id: t for t in traces}
    failures, _ = failures_from_records(_dated(records, truth, "pii_leak"), v2, by_id.get)
    report = cl.cluster_failures(failures)
    growing = cl.growing_clusters(report, failures, recent_days=7)
    assert growing and growing[0]["new"]
    flagged = next(c for c in report.clusters if c.id == growing[0]["cluster"])
    assert {truth[t] for t in flagged.trace_ids} == {"pii_leak"}
    assert all(row["recent_share"] >= 2 * row["earlier_share"] for row in growing)
    # spread evenly over time, nothing grows
    even = [f for f in failures if truth[f.trace_id] != "pii_leak"]
    assert cl.growing_clusters(cl.cluster_failures(even), even, recent_days=7) == []


def test_stats_flags_growing_clusters_of_a_queue(env):
    traces, records, truth = planted(0)
    _fill_store(_dated(records, truth, "pii_leak"), traces)
    result = CliRunner().invoke(main, ["stats", "--clusters", "review"])
    assert result.exit_code == 0, result.output
    assert "failure clusters of review growing in the last 7 days: 1" in result.output
    assert "NEW" in result.output
    as_json = CliRunner().invoke(main, ["stats", "--clusters", "review", "--json"])
    assert json.loads(as_json.output)["growing_clusters"][0]["new"] is True
    plain = CliRunner().invoke(main, ["stats", "--json"])
    assert "growing_clusters" not in json.loads(plain.output)


def test_failures_with_nothing_written_still_cluster_and_are_named_by_their_quotes(v2):
    traces = {f"q{i}": Trace(trace_id=f"q{i}", output=f"It is {w} today.")
              for i, w in enumerate(["sunny"] * 6 + ["snowing"] * 6)}
    records = []
    for i, trace_id in enumerate(traces):
        records.append(_rec(f"ls:1:{i}", trace_id, "fail"))
        word = traces[trace_id].output.split()[2]
        records.append(_rec(f"ls:1:{i}:s", trace_id, None, labels=["wrong_fact"],
                            scope=Scope(kind="text_range", target="answer", text=word)))
    # and one with no marks at all (an empty text embeds as zeros, not NaN)
    traces["empty"] = Trace(trace_id="empty")
    records.append(_rec("ls:1:99", "empty", "fail"))
    failures, _ = failures_from_records(records, v2, traces.get)
    report = cluster_failures(failures, seed=0)
    names = {c.name.split(" / ")[0] for c in report.clusters}
    assert {"sunny", "snowing"} <= names, names
