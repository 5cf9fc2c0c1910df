"""Failure rates corrected for the judge's errors: the Rogan-Gladen estimator (pure).

The judge labels every trace, reviewers only a sample. The share of traces the judge
fails (the *raw* rate, ``q``) is biased by its errors: it misses failures (true-positive
rate ``TPR`` below 1) and fails good traces (true-negative rate ``TNR`` below 1):

    q = TPR * p + (1 - TNR) * (1 - p)     =>     p = (q + TNR - 1) / (TPR + TNR - 1)

with ``TPR``/``TNR`` measured on the traces both the judge and a reviewer labelled (the
deciding reviewer record is the truth). The estimate is clipped to [0, 1]; it is
undefined when ``TPR + TNR <= 1`` (a judge no better than chance says nothing about the
rate).

Interval: a percentile bootstrap over *both* samples, so the uncertainty of the measured
TPR/TNR is in it too: each replicate redraws the judged traces of the cell (binomial with
the cell's own ``q``, which is the item bootstrap of a yes/no sample) and, independently,
the calibration pairs (multinomial over the four confusion cells), and recomputes the
estimate; replicates where it is undefined are left out (counted). Seeded: the same seed
gives the same interval.

Assumptions, said plainly: the judge's TPR/TNR are the same in the cell as on the
calibration sample (pooled over the queue: per-slice agreement in ``agreement`` shows
whether they differ), and the reviewed traces are, given their true label, a sample the
judge's verdict did not select (a queue fed only by "the judge said fail" measures a
biased TNR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ls_llmtrace.evals.agreement import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Estimate, estimates


@dataclass(frozen=True)
class Calibration:
    """The judge against the deciding reviewer record on the traces both labelled
    (failure positive)."""

    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def tpr(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def tnr(self) -> float | None:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else None

    @classmethod
    def of(cls, human: list[bool], judge: list[bool]) -> Calibration:
        pairs = list(zip(human, judge, strict=True))
        return cls(tp=sum(h and j for h, j in pairs), fn=sum(h and not j for h, j in pairs),
                   fp=sum(j and not h for h, j in pairs),
                   tn=sum(not h and not j for h, j in pairs))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn,
                "tpr": self.tpr, "tnr": self.tnr}


def rogan_gladen(q: np.ndarray | float, tpr: np.ndarray | float,
                 tnr: np.ndarray | float) -> np.ndarray:
    """``clip((q + TNR - 1) / (TPR + TNR - 1), 0, 1)``, NaN where ``TPR + TNR <= 1`` or
    an input is NaN (vectorized)."""
    q, tpr, tnr = (np.asarray(v, dtype=float) for v in (q, tpr, tnr))
    youden = tpr + tnr - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = (q + tnr - 1) / np.where(youden > 0, youden, 1.0)
    out: np.ndarray = np.where(youden > 0, np.clip(raw, 0.0, 1.0), np.nan)
    return out


@dataclass(frozen=True)
class CorrectedRate:
    """One cell: how many traces the judge labelled and failed, the raw rate and the
    corrected one, each with its interval."""

    judged: int
    judge_failing: int
    raw: Estimate
    corrected: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {"judged": self.judged, "judge_failing": self.judge_failing,
                "raw": self.raw.as_dict(), "corrected": self.corrected.as_dict()}


def calibration_draws(calibration: Calibration, n_resamples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of (TPR, TNR): the calibration pairs redrawn with replacement
    (a multinomial over the four confusion cells); NaN where a replicate has no failures
    or no passes."""
    n = calibration.n
    cells = np.array([calibration.tp, calibration.fn, calibration.fp, calibration.tn],
                     dtype=float)
    counts = rng.multinomial(n, cells / n, size=n_resamples).astype(float)
    tp, fn, fp, tn = counts.T
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.where(tp + fn > 0, tp / np.where(tp + fn > 0, tp + fn, 1), np.nan)
        tnr = np.where(tn + fp > 0, tn / np.where(tn + fp > 0, tn + fp, 1), np.nan)
    return tpr, tnr


def corrected_rate(judge_failing: int, judged: int, calibration: Calibration, *,
                   seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                   level: float = DEFAULT_LEVEL) -> CorrectedRate:
    """The raw and the Rogan-Gladen-corrected failure rate of one cell: ``judge_failing``
    of ``judged`` traces failed by the judge, corrected with ``calibration``."""
    if judged <= 0:
        empty = Estimate(None, None, None)
        return CorrectedRate(0, 0, empty, empty)
    if not 0 <= judge_failing <= judged:
        raise ValueError(f"{judge_failing} failing of {judged} judged traces")
    q = judge_failing / judged
    point = np.array([q, float(rogan_gladen(q, calibration.tpr or np.nan,
                                            calibration.tnr or np.nan))])
    if calibration.tpr is None or calibration.tnr is None:
        point[1] = np.nan
    if n_resamples <= 0 or calibration.n == 0:
        found = [Estimate(None if np.isnan(v) else float(v), None, None) for v in point]
        return CorrectedRate(judged, judge_failing, found[0], found[1])
    rng = np.random.default_rng(seed)
    q_draws = rng.binomial(judged, q, size=n_resamples) / judged
    tpr, tnr = calibration_draws(calibration, n_resamples, rng)
    draws = np.stack([q_draws, rogan_gladen(q_draws, tpr, tnr)], axis=-1)
    raw, corrected = estimates(point, draws, level)
    return CorrectedRate(judged, judge_failing, raw, corrected)
