"""Failure rates corrected for the judge (evals/correction.py): the Rogan-Gladen estimator
by hand, and a simulation with a known judge error rate showing the corrected rate is
unbiased where the raw one is not, and its interval covers the truth near 95% of the time
(only because it carries the uncertainty of the measured TPR/TNR: without it, it does not).
"""

from __future__ import annotations

import numpy as np
import pytest

from ls_llmtrace.evals.correction import Calibration, corrected_rate, rogan_gladen

TRUE_RATE, TPR, TNR = 0.2, 0.85, 0.9


def test_rogan_gladen_by_hand() -> None:
    assert float(rogan_gladen(0.3, 0.8, 0.9)) == pytest.approx((0.3 + 0.9 - 1) / (0.8 + 0.9 - 1))
    assert float(rogan_gladen(0.05, 0.8, 0.9)) == 0.0  # below the false-positive floor
    assert float(rogan_gladen(0.95, 0.8, 0.9)) == 1.0
    assert np.isnan(rogan_gladen(0.3, 0.5, 0.5))  # a judge no better than chance
    assert float(rogan_gladen(0.3, 1.0, 1.0)) == pytest.approx(0.3)  # a perfect judge


def test_calibration_counts() -> None:
    c = Calibration.of([True, True, False, False, False], [True, False, True, False, False])
    assert (c.tp, c.fn, c.fp, c.tn, c.n) == (1, 1, 1, 2, 5)
    assert c.tpr == 0.5 and c.tnr == pytest.approx(2 / 3)
    assert Calibration.of([False], [False]).tpr is None


def test_corrected_rate_point_and_interval() -> None:
    calibration = Calibration(tp=80, fn=20, fp=30, tn=270)  # TPR 0.8, TNR 0.9
    rate = corrected_rate(300, 1000, calibration, seed=5, n_resamples=1000)
    assert rate.raw.value == pytest.approx(0.3)
    assert rate.corrected.value == pytest.approx((0.3 + 0.9 - 1) / 0.7)
    assert rate.corrected.low < rate.corrected.value < rate.corrected.high
    # the corrected interval carries the calibration's uncertainty: wider than the raw one
    assert (rate.corrected.high - rate.corrected.low) > (rate.raw.high - rate.raw.low)
    assert corrected_rate(300, 1000, calibration, seed=5, n_resamples=1000) == rate
    no_failures = Calibration(tp=0, fn=0, fp=3, tn=50)
    undefined = corrected_rate(10, 100, no_failures, n_resamples=100)
    assert undefined.corrected.value is None and undefined.raw.value == pytest.approx(0.1)
    assert corrected_rate(0, 0, calibration).raw.value is None
    with pytest.raises(ValueError):
        corrected_rate(5, 3, calibration)


def _simulate(runs: int, judged: int, reviewed: int, seed: int,
              n_resamples: int) -> dict[str, np.ndarray]:
    """Each run: a population whose failures occur at TRUE_RATE, a judge that catches a
    failure with probability TPR and passes a good trace with probability TNR, every trace
    judged, a random sample reviewed (the reviewer's label is the truth)."""
    rng = np.random.default_rng(seed)
    raw, corrected, covered, naive_covered = [], [], [], []
    for run in range(runs):
        truth = rng.random(judged) < TRUE_RATE
        judge = np.where(truth, rng.random(judged) < TPR, rng.random(judged) >= TNR)
        sample = rng.choice(judged, size=reviewed, replace=False)
        calibration = Calibration.of(truth[sample].tolist(), judge[sample].tolist())
        rate = corrected_rate(int(judge.sum()), judged, calibration, seed=run,
                              n_resamples=n_resamples)
        assert rate.raw.value is not None and rate.corrected.value is not None
        assert rate.corrected.low is not None and rate.corrected.high is not None
        raw.append(rate.raw.value)
        corrected.append(rate.corrected.value)
        covered.append(rate.corrected.low <= TRUE_RATE <= rate.corrected.high)
        # the same interval with TPR/TNR taken as exact (only the judged sample redrawn)
        q = rng.binomial(judged, rate.raw.value, n_resamples) / judged
        naive = rogan_gladen(q, calibration.tpr, calibration.tnr)
        low, high = np.quantile(naive, [0.025, 0.975])
        naive_covered.append(low <= TRUE_RATE <= high)
    return {"raw": np.array(raw), "corrected": np.array(corrected),
            "covered": np.array(covered), "naive_covered": np.array(naive_covered)}


def test_simulation_corrected_is_unbiased_raw_is_not_and_coverage_is_near_nominal() -> None:
    found = _simulate(runs=300, judged=3000, reviewed=400, seed=2024, n_resamples=400)
    expected_raw = TPR * TRUE_RATE + (1 - TNR) * (1 - TRUE_RATE)  # 0.25
    # per-run sd of the corrected rate is about 0.023: the mean of 300 is within 0.0014
    assert abs(found["corrected"].mean() - TRUE_RATE) < 0.006
    assert abs(found["raw"].mean() - expected_raw) < 0.003
    assert found["raw"].mean() - TRUE_RATE > 0.04  # the raw rate is off by the judge's errors
    assert 0.91 <= found["covered"].mean() <= 0.985
    assert found["naive_covered"].mean() < 0.8  # ignoring the TPR/TNR uncertainty undercovers


@pytest.mark.stress
def test_simulation_at_scale() -> None:
    found = _simulate(runs=2000, judged=5000, reviewed=300, seed=7, n_resamples=1000)
    assert abs(found["corrected"].mean() - TRUE_RATE) < 0.003
    assert 0.93 <= found["covered"].mean() <= 0.97
