"""Human vs human (evals/reliability.py): Krippendorff's alpha per field and overall (the
``krippendorff`` package, checked on hand-computed cases), each reviewer's agreement with
the others (kappa against scikit-learn), and the judge beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from ls_llmtrace.evals.reliability import Rating, latest_ratings, reliability
from ls_llmtrace.models import AnnotationRecord, Source
from ls_llmtrace.schema.model import load_schema

from .paths import LABEL_CONFIGS

V1 = load_schema(LABEL_CONFIGS / "default.v1.yaml")
V2 = load_schema(LABEL_CONFIGS / "default.v2.yaml")


def _ratings(columns: dict[str, list[str | None]]) -> dict[str, dict[str, Rating]]:
    out: dict[str, dict[str, Rating]] = {}
    for reviewer, verdicts in columns.items():
        for i, v in enumerate(verdicts):
            if v is not None:
                out.setdefault(f"t{i}", {})[reviewer] = Rating(v)
    return out


def test_alpha_hand_computed_two_reviewers() -> None:
    # A: pass pass fail fail; B: pass fail fail fail. Coincidences: o(pass,pass)=2,
    # o(pass,fail)=o(fail,pass)=1, o(fail,fail)=4; n=8, n_pass=3, n_fail=5.
    # D_o = 2/8; D_e = 2*3*5/(8*7); alpha = 1 - D_o/D_e = 1 - 0.25/(30/56) = 0.5333...
    found = reliability(_ratings({"a": ["pass", "pass", "fail", "fail"],
                                  "b": ["pass", "fail", "fail", "fail"]}), V1,
                        n_resamples=0)
    verdict = found.fields[0]
    assert verdict.field == "verdict" and verdict.units == 4
    assert verdict.alpha == pytest.approx(1 - 0.25 / (30 / 56))
    assert found.overall.alpha == pytest.approx(verdict.alpha)  # v1 has no categories
    assert found.among_reviewers.agreement.value == pytest.approx(3 / 4)


def test_alpha_with_missing_ratings_matches_the_package_and_krippendorffs_example() -> None:
    # Krippendorff's own worked example (4 coders, 12 units, missing values; nominal
    # alpha 0.743), written as verdict names
    names = {1: "v1", 2: "v2", 3: "v3", 4: "v4", 5: "v5"}
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    columns = {f"c{i}": [names[v] if v else None for v in row] for i, row in enumerate(data)}
    found = reliability(_ratings(columns), V1, n_resamples=0)
    assert found.fields[0].alpha == pytest.approx(0.743, abs=5e-4)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
    assert found.fields[0].alpha == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    assert found.fields[0].units == 11  # unit 12 has one rating only


def test_categories_score_and_overall() -> None:
    ratings = {
        "t1": {"a": Rating("fail", frozenset({"hallucination"}), 0.25),
               "b": Rating("fail", frozenset({"hallucination"}), 0.25)},
        "t2": {"a": Rating("fail", frozenset({"incomplete"}), 0.0),
               "b": Rating("fail", frozenset({"hallucination"}), 0.5)},
        "t3": {"a": Rating("pass", frozenset(), 1.0), "b": Rating("pass", frozenset(), 0.75)},
        "t4": {"a": Rating("pass", frozenset(), 1.0), "b": Rating("fail", frozenset(), 0.5)},
    }
    found = reliability(ratings, V2, n_resamples=0)
    by = {f.field: f for f in found.fields}
    assert set(by) == {"verdict", "score", *(f"category:{c}" for c in V2.categories)}
    hall = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=float)
    assert by["category:hallucination"].alpha == pytest.approx(
        krippendorff.alpha(reliability_data=hall, level_of_measurement="nominal"))
    assert by["category:unsafe"].alpha is None  # nobody used it: undefined
    scores = np.array([[0.25, 0.0, 1.0, 1.0], [0.25, 0.5, 0.75, 0.5]])
    assert by["score"].alpha == pytest.approx(
        krippendorff.alpha(reliability_data=scores, level_of_measurement="interval"))
    assert by["score"].level == "interval"
    assert found.overall.alpha is not None and found.overall.units == 4 * 6


def test_each_reviewer_against_the_others_and_the_judge_beside_them() -> None:
    columns = {"ann": ["fail", "fail", "pass", "pass", "pass", "fail", "pass", "pass"],
               "bob": ["fail", "pass", "pass", "pass", "pass", "fail", "pass", "fail"],
               "cy": ["fail", "fail", "pass", "fail", "pass", "fail", "pass", "pass"]}
    judge = {f"t{i}": v for i, v in enumerate(
        ["fail", "pass", "fail", "pass", "pass", "pass", "pass", "pass"])}
    found = reliability(_ratings(columns), V1, judge, seed=3, n_resamples=300)
    ann = next(p for p in found.per_reviewer if p.rater == "ann")
    mine = [columns["ann"][i] for i in range(8) for _ in ("bob", "cy")]
    theirs = [columns[o][i] for i in range(8) for o in ("bob", "cy")]
    assert ann.pairs == 16 and ann.traces == 8
    assert ann.agreement.value == pytest.approx(np.mean([m == t for m, t in
                                                         zip(mine, theirs, strict=True)]))
    assert ann.kappa.value == pytest.approx(cohen_kappa_score(mine, theirs))
    assert found.judge is not None and found.judge.pairs == 24
    assert found.judge.agreement.value < found.among_reviewers.agreement.value
    assert found.among_reviewers.pairs == 24
    e = found.judge.agreement
    assert e.low is not None and e.high is not None and e.low <= e.value <= e.high


def test_latest_ratings_keeps_one_per_reviewer_and_leaves_the_owner_out() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def rec(key: str, author: str, label: str, minutes: int) -> AnnotationRecord:
        return AnnotationRecord(record_key=key, trace_id="t1", schema_id="default",
                                schema_version=1, source=Source.reviewer, label=label,
                                author=author, updated_at=t0 + timedelta(minutes=minutes))

    ratings = latest_ratings([rec("k1", "ann", "pass", 1), rec("k2", "ann", "fail", 5),
                              rec("k3", "bob", "pass", 2),
                              rec("k4", V1.owner, "fail", 9)], owner=V1.owner)
    assert ratings == {"t1": {"ann": Rating("fail"), "bob": Rating("pass")}}
