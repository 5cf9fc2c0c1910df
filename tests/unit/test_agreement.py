"""Judge-vs-human agreement (evals/agreement.py): every figure against scikit-learn and
SciPy on the same inputs, hand-computed small cases, and seeded reproducible intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import bootstrap as scipy_bootstrap
from scipy.stats import fisher_exact
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from sklearn.preprocessing import MultiLabelBinarizer

from ls_llmtrace.evals.agreement import (
    BINARY_FIGURES,
    Estimate,
    SpanItem,
    binary_agreement,
    binary_figures,
    category_agreement,
    holm,
    pairwise_agreement,
    slice_agreement,
    span_agreement,
)

# tp=3, fn=1, fp=2, tn=4 (failure = True)
HUMAN = [True, True, True, True, False, False, False, False, False, False]
JUDGE = [True, True, True, False, True, True, False, False, False, False]


def test_hand_computed_small_case() -> None:
    a = binary_agreement(HUMAN, JUDGE, n_resamples=0)
    assert (a.n, a.tp, a.fn, a.fp, a.tn) == (10, 3, 1, 2, 4)
    assert a.accuracy.value == pytest.approx(0.7)
    # p_human = 0.4, p_judge = 0.5: chance agreement 0.4*0.5 + 0.6*0.5 = 0.5
    assert a.kappa.value == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert a.tpr.value == pytest.approx(3 / 4)
    assert a.tnr.value == pytest.approx(4 / 6)
    assert a.balanced_accuracy.value == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert a.precision.value == pytest.approx(3 / 5)
    assert a.f1.value == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert a.confusion["fp"].value == pytest.approx(0.2)
    assert a.accuracy.low is None  # no resamples, no interval


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=60))
def test_point_figures_equal_scikit_learn(pairs: list[tuple[bool, bool]]) -> None:
    human = [h for h, _ in pairs]
    judge = [j for _, j in pairs]
    if len(set(human)) < 2 or len(set(judge)) < 2:
        return  # undefined figures are checked separately
    a = binary_agreement(human, judge, n_resamples=0)
    assert a.accuracy.value == pytest.approx(accuracy_score(human, judge))
    assert a.kappa.value == pytest.approx(cohen_kappa_score(human, judge))
    assert a.tpr.value == pytest.approx(recall_score(human, judge, pos_label=True))
    assert a.tnr.value == pytest.approx(recall_score(human, judge, pos_label=False))
    assert a.balanced_accuracy.value == pytest.approx(balanced_accuracy_score(human, judge))
    assert a.precision.value == pytest.approx(
        precision_score(human, judge, pos_label=True, zero_division=np.nan), nan_ok=True)
    assert a.f1.value == pytest.approx(f1_score(human, judge, pos_label=True))
    tn, fp, fn, tp = confusion_matrix(human, judge, labels=[False, True]).ravel()
    assert (a.tp, a.fn, a.fp, a.tn) == (tp, fn, fp, tn)


def test_vectorized_figures_equal_scikit_learn_row_by_row() -> None:
    rng = np.random.default_rng(3)
    h = rng.random((50, 40)) < 0.3
    j = rng.random((50, 40)) < 0.4
    figures = binary_figures(h, j)
    kappa = BINARY_FIGURES.index("kappa")
    for row in range(50):
        assert figures[row, kappa] == pytest.approx(cohen_kappa_score(h[row], j[row]))


def test_interval_equals_scipy_bootstrap_when_no_resample_is_degenerate() -> None:
    rng = np.random.default_rng(11)
    human = rng.random(300) < 0.4
    judge = np.where(rng.random(300) < 0.85, human, ~human)
    a = binary_agreement(human, judge, seed=42, n_resamples=999)
    for name in ("accuracy", "kappa", "tpr", "tnr", "f1"):
        column = BINARY_FIGURES.index(name)

        def statistic(h: np.ndarray, j: np.ndarray, axis: int = -1,
                      column: int = column) -> np.ndarray:
            return binary_figures(h, j)[..., column]

        ours: Estimate = getattr(a, name)
        theirs = scipy_bootstrap((human, judge), statistic, paired=True, vectorized=True,
                                 n_resamples=999, method="percentile",
                                 rng=np.random.default_rng(42))
        assert ours.undefined == 0
        assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=1e-12)
        assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=1e-12)


def test_intervals_reproducible_with_a_seed_and_cover_the_value() -> None:
    first = binary_agreement(HUMAN * 3, JUDGE * 3, seed=7, n_resamples=500)
    again = binary_agreement(HUMAN * 3, JUDGE * 3, seed=7, n_resamples=500)
    other = binary_agreement(HUMAN * 3, JUDGE * 3, seed=8, n_resamples=500)
    assert first == again
    assert (first.kappa.low, first.kappa.high) != (other.kappa.low, other.kappa.high)
    for name in ("accuracy", "kappa", "tpr", "tnr", "balanced_accuracy"):
        e = getattr(first, name)
        assert e.low is not None and e.high is not None
        assert e.low <= e.value <= e.high
        assert e.high - e.low > 0


def test_degenerate_resamples_are_left_out_not_nan() -> None:
    # one failure in 12: many resamples hold no failure, so TPR and kappa are undefined
    # there; scipy's interval would be NaN, ours is made of the defined resamples
    human = [True] + [False] * 11
    judge = [True, True] + [False] * 10
    a = binary_agreement(human, judge, seed=1, n_resamples=400)
    assert a.tpr.value == 1.0
    assert 0 < a.tpr.undefined < 400
    assert a.tpr.low is not None and a.kappa.low is not None
    assert a.accuracy.undefined == 0


def test_undefined_on_the_data_itself() -> None:
    a = binary_agreement([False] * 5, [False, False, True, False, False], n_resamples=100)
    assert a.tpr.value is None and a.tpr.low is None
    assert a.tnr.value == pytest.approx(0.8)
    assert a.kappa.value == pytest.approx(0.0)  # as scikit-learn: observed = expected
    assert cohen_kappa_score([False] * 5, [False, False, True, False, False]) == 0.0
    same = binary_agreement([False] * 4, [False] * 4, n_resamples=0)
    assert same.kappa.value is None  # both raters constant and equal: undefined


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        binary_agreement([True], [True, False])
    with pytest.raises(ValueError, match="no items"):
        binary_agreement([], [])
    with pytest.raises(ValueError, match="booleans"):
        binary_agreement(["fail"], ["pass"])


def test_categories_equal_scikit_learn_multilabel() -> None:
    human = [{"hallucination"}, {"hallucination", "tone"}, set(), {"tone"}, {"refusal"},
             {"hallucination"}, set()]
    judge = [{"hallucination"}, {"tone"}, {"tone"}, {"tone", "refusal"}, set(),
             {"hallucination", "refusal"}, set()]
    found = category_agreement(human, judge, seed=0, n_resamples=300)
    names = [c.category for c in found]
    assert names == ["hallucination", "refusal", "tone"]
    binarizer = MultiLabelBinarizer(classes=names)
    h, j = binarizer.fit_transform(human), binarizer.transform(judge)
    precision, recall, f1, support = precision_recall_fscore_support(
        h, j, average=None, zero_division=np.nan)
    for i, c in enumerate(found):
        assert c.support == support[i]
        assert c.precision.value == pytest.approx(precision[i], nan_ok=True)
        assert c.recall.value == pytest.approx(recall[i])
        assert c.f1.value == pytest.approx(f1[i])
    hallucination = found[0]
    assert (hallucination.precision.value, hallucination.recall.value) == (1.0, 2 / 3)
    refusal = found[1]  # judge gave it twice, wrongly; the human once, missed
    assert refusal.precision.value == 0.0 and refusal.recall.value == 0.0
    assert refusal.f1.value == 0.0


def test_pairwise_hand_case_and_kappa_against_scikit_learn() -> None:
    human = ["1", "2", "1", "2", "1", "2"]
    first = ["1", "2", "1", "1", "1", None]
    second = ["1", "2", "2", "2", "1", "2"]
    p = pairwise_agreement(human, first, second, n_resamples=200, seed=3)
    assert (p.correct_first, p.correct_second, p.correct_both, p.consistent) == (4, 5, 3, 3)
    assert p.accuracy_average.value == pytest.approx((4 + 5) / 2 / 6)
    assert p.kappa_orders.value == pytest.approx(
        cohen_kappa_score([str(v) for v in first], second))
    counted = pairwise_agreement(human, first, second, missing="2", n_resamples=0)
    assert counted.kappa_orders.value == pytest.approx(
        cohen_kappa_score([v or "2" for v in first], second))
    assert counted.consistent == 3  # accuracy/consistency use the verdicts as given


def test_span_token_f1_hand_case() -> None:
    text = "Paris is the capital of Germany and has 3 million people"
    # reviewer: "capital of Germany" (tokens 3-5) and "3 million" (8-9); judge: "of
    # Germany and" (4-6), labelled differently for the second token
    human = [(13, 31, "wrong_fact"), (40, 49, "wrong_fact")]
    judge = [(21, 35, "wrong_fact")]
    s = span_agreement([SpanItem(text, judge, human)], n_resamples=0)
    assert s is not None
    assert (s.judge_tokens, s.human_tokens, s.overlap_tokens) == (3, 5, 2)
    assert s.precision.value == pytest.approx(2 / 3)
    assert s.recall.value == pytest.approx(2 / 5)
    assert s.f1.value == pytest.approx(2 * 2 / (3 + 5))
    relabelled = span_agreement([SpanItem(text, [(21, 35, "other")], human)], n_resamples=0)
    assert relabelled is not None
    assert relabelled.f1.value == s.f1.value and relabelled.labelled_f1.value == 0.0
    assert span_agreement([]) is None


def test_holm_hand_case() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_a_slice_significantly_below_the_rest_is_flagged() -> None:
    rows = []
    for area, agreeing, total in (("billing", 45, 50), ("search", 46, 50),
                                  ("support", 25, 50)):
        for i in range(total):
            human = i % 2 == 0
            rows.append((area, human, human if i < agreeing else not human))
    found = {s.value: s for s in slice_agreement("product_area", rows, n_resamples=200)}
    assert found["support"].below and not found["billing"].below
    assert not found["search"].below
    support = found["support"]
    assert support.agreement.accuracy.value == 0.5
    assert support.rest_accuracy == pytest.approx(91 / 100)
    expected = fisher_exact([[25, 25], [91, 9]], alternative="less").pvalue
    assert support.p_value == pytest.approx(expected)
    assert support.p_adjusted == pytest.approx(min(1.0, 3 * expected))
    lone = slice_agreement("model_version", [("m1", True, True), ("m1", False, True)],
                           n_resamples=0)
    assert lone[0].p_value is None and not lone[0].below
