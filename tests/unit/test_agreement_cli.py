"""``agreement``, ``stats --corrected`` and ``report`` on a planted queue in a SQLite store:
the figures equal an independent recount of the planted data (scikit-learn on the
deciding verdicts), the bad slice is flagged, the reviewers' alpha is the package's, and
the judge's predictions map to judge records."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from tests.support.judged_queue import JUDGE_VERSION, OWNER, deciding, planted_queue

from ls_llmtrace.cli import main
from ls_llmtrace.evals.correction import rogan_gladen
from ls_llmtrace.models import Source
from ls_llmtrace.records.verdicts import map_prediction
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

from .paths import LABEL_CONFIGS

PLANTED = planted_queue()


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", "sqlite:///" + str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(LABEL_CONFIGS))
    with Store() as store:
        store.set_queue("review", 1, "default", 2, "review", "llmtrace review | default@v2")
        store.remember_project(1, "review", "default", 2, "llmtrace review | default@v2")
        store.upsert_traces(PLANTED.traces)
        with store.transaction() as conn:
            for r in PLANTED.records:
                Store.upsert_record(conn, r)
    return tmp_path


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _recount() -> tuple[list[bool], list[bool], list[str]]:
    both = sorted(t for t in PLANTED.truth if deciding(PLANTED, t) is not None)
    return ([bool(deciding(PLANTED, t)) for t in both], [PLANTED.judge[t] for t in both],
            both)


def test_agreement_equals_an_independent_recount(env: Path) -> None:
    found = json.loads(_run("agreement", "--queue", "review", "--json", "--resamples", "300"))
    human, judge, both = _recount()
    assert found["judge_version"] == JUDGE_VERSION
    assert found["traces"] == {"judged": 240, "reviewed": len(both), "both": len(both)}
    assert found["decided_by"]["adjudication"] == sum(
        any(who == OWNER for who, _ in r) for r in PLANTED.reviews.values())
    b = found["binary"]
    tn, fp, fn, tp = confusion_matrix(human, judge, labels=[False, True]).ravel()
    assert b["confusion_counts"] == {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    assert b["kappa"]["value"] == pytest.approx(cohen_kappa_score(human, judge))
    assert b["kappa"]["low"] < b["kappa"]["value"] < b["kappa"]["high"]
    areas = {s["value"]: s for s in found["slices"]["product_area"]}
    assert areas["support"]["below_rest"]
    assert not areas["billing"]["below_rest"] and not areas["search"]["below_rest"]
    models = {s["value"] for s in found["slices"]["model_version"]}
    assert models == {"model-a", "model-b"}
    hallucination = next(c for c in found["categories"] if c["category"] == "hallucination")
    assert hallucination["support"] == sum(
        1 for t, h in zip(both, human, strict=True) if h and int(t[1:]) % 4)
    spans = found["spans"]
    assert spans["judge_tokens"] > 0 and spans["human_tokens"] > 0
    assert 0 < spans["f1"]["value"] < 1  # the planted spans overlap in part


def test_reviewer_reliability_is_krippendorffs_alpha_of_ann_and_bob(env: Path) -> None:
    found = json.loads(_run("agreement", "--json", "--resamples", "100"))
    rel = found["reliability"]
    assert rel["reviewers"] == ["ann@example.com", "bob@example.com"]  # not the owner
    shared = sorted(t for t, r in PLANTED.reviews.items() if len(r) >= 2)
    matrix = np.array([[float(next(v for w, v in PLANTED.reviews[t] if w == who))
                        for t in shared] for who in ("ann", "bob")])
    verdict = next(f for f in rel["alpha"] if f["field"] == "verdict")
    assert verdict["units"] == len(shared)
    assert verdict["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    assert rel["judge"]["pairs"] == 2 * len(shared)


def test_agreement_table_and_period_and_unknown_judge(env: Path) -> None:
    text = _run("agreement", "--queue", "review", "--resamples", "100")
    for needle in ("Cohen's kappa", "confusion matrix", "by product_area", "BELOW",
                   "Krippendorff's alpha", "all reviewer pairs (the ceiling)", "spans"):
        assert needle in text
    first_week = json.loads(_run("agreement", "--json", "--resamples", "0",
                                 "--until", "2026-01-12"))
    assert 0 < first_week["traces"]["judged"] < 240
    result = CliRunner().invoke(main, ["agreement", "--judge-version", "nope"])
    assert result.exit_code == 2 and "has no verdicts" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_stats_corrected_next_to_raw(env: Path) -> None:
    found = json.loads(_run("stats", "--corrected", "review", "--json"))
    corrected = found["corrected"]
    human, judge, _ = _recount()
    tp = sum(h and j for h, j in zip(human, judge, strict=True))
    tn = sum(not h and not j for h, j in zip(human, judge, strict=True))
    tpr, tnr = tp / sum(human), tn / (len(human) - sum(human))
    raw = sum(PLANTED.judge.values()) / 240
    total = corrected["total"]
    assert total["raw"]["value"] == pytest.approx(raw)
    assert total["corrected"]["value"] == pytest.approx(float(rogan_gladen(raw, tpr, tnr)))
    assert total["corrected"]["low"] < total["corrected"]["value"] < total["corrected"]["high"]
    by_model = {r["value"]: r for r in corrected["by"]["model_version"]}
    assert by_model["model-b"]["corrected"]["value"] > by_model["model-a"]["corrected"]["value"]
    assert "by" in found and "sources" in found  # the plain stats are still there
    text = _run("stats", "--corrected", "review")
    assert "corrected for the judge" in text and "model_version=model-b" in text


def test_report_is_one_offline_html_page(env: Path) -> None:
    out = env / "report"
    _run("report", "--queue", "review", "--out", str(out), "--resamples", "100")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot") >= 7
    assert "<script src=" not in page and "src=\"http" not in page  # plotly.js inlined
    assert "no calibration yet" in page and "no golden set found" in page
    assert 'id="chart-rates-model_version"' in page and 'id="chart-confusion"' in page


def test_a_prediction_maps_to_judge_records_and_unknown_values_are_kept_aside() -> None:
    schema = load_schema(LABEL_CONFIGS / "default.v2.yaml")
    task = {"id": 7, "data": {"trace_id": "t1", "answer": "It costs 40 dollars."}}
    prediction = {"id": 55, "model_version": JUDGE_VERSION, "score": 0.8, "result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "categories", "to_name": "answer", "type": "choices",
         "value": {"choices": ["hallucination"]}},
        {"id": "r1", "from_name": "answer_spans", "to_name": "answer", "type": "labels",
         "value": {"start": 3, "end": 8, "text": "costs", "labels": ["wrong_fact"]}},
        {"from_name": "explanation", "to_name": "answer", "type": "textarea",
         "value": {"text": ["made up"]}},
        {"from_name": "nonsense", "to_name": "answer", "type": "choices",
         "value": {"choices": ["x"]}}]}
    mapped = map_prediction(task, prediction, schema, 3)
    trace, span = mapped.records
    assert trace.record_key == "ls:3:prediction:55" and span.record_key == "ls:3:prediction:55:r1"
    assert trace.source == Source.judge and trace.author == JUDGE_VERSION
    assert trace.label == "fail" and trace.labels == ["hallucination"]
    assert trace.metadata == {"judge_version": JUDGE_VERSION, "confidence": 0.8}
    assert "model_version" not in trace.metadata  # the traced model's dimension, not the judge's
    assert span.scope.start == 3 and span.labels == ["wrong_fact"]
    assert trace.ls_annotation_id is None
    assert [r.field for r in mapped.rejects] == ["nonsense"]
