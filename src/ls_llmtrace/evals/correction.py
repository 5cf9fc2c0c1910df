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
from datetime import datetime
from typing import Any

import numpy as np

from ls_llmtrace.evals.agreement import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Estimate, estimates
from ls_llmtrace.evals.judged import DIMENSIONS, UNKNOWN, Judged, QueueVerdicts


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


# A queue's corrected rates ------------------------------------------------------------------

def _cell(items: list[Judged], qv: QueueVerdicts, calibration: Calibration, seed: int,
          n_resamples: int, level: float) -> dict[str, Any]:
    judged = [i for i in items if i.judge is not None]
    failing = sum(bool(qv.failing(i.judge)) for i in judged)
    reviewed = [i for i in items if i.human is not None]
    reviewed_failing = sum(bool(qv.failing(i.human)) for i in reviewed)
    rate = corrected_rate(failing, len(judged), calibration, seed=seed,
                          n_resamples=n_resamples, level=level)
    return {**rate.as_dict(), "reviewed": len(reviewed), "reviewed_failing": reviewed_failing,
            "reviewed_rate": reviewed_failing / len(reviewed) if reviewed else None}


def queue_calibration(qv: QueueVerdicts) -> Calibration:
    """The judge against the deciding reviewer record on the traces both labelled."""
    both = qv.both()
    return Calibration.of([bool(qv.failing(i.human)) for i in both],
                          [bool(qv.failing(i.judge)) for i in both])


def corrected_rates(qv: QueueVerdicts, *, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                    level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """The queue's failure rate, overall and per model version, product area and user
    segment: the judge's raw rate, the corrected one (pooled calibration), and the rate
    among the reviewed traces, each cell with its counts."""
    calibration = queue_calibration(qv)
    out: dict[str, Any] = {
        "queue": qv.queue, "judge_version": qv.judge_version,
        "calibration": calibration.as_dict(), "seed": seed, "n_resamples": n_resamples,
        "level": level,
        "total": _cell(qv.items, qv, calibration, seed, n_resamples, level), "by": {}}
    for dim in DIMENSIONS:
        groups: dict[str, list[Judged]] = {}
        for item in qv.items:
            groups.setdefault(item.dimension(dim), []).append(item)
        out["by"][dim] = [{"value": value, **_cell(group, qv, calibration, seed,
                                                   n_resamples, level)}
                          for value, group in sorted(groups.items())]
    return out


def period_of(when: datetime | None, period: str) -> str:
    """``2026-W07`` (ISO week), ``2026-02-14`` (day) or ``2026-02`` (month)."""
    if when is None:
        return UNKNOWN
    if period == "day":
        return when.strftime("%Y-%m-%d")
    if period == "month":
        return when.strftime("%Y-%m")
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def rates_over_time(qv: QueueVerdicts, dimension: str, *, period: str = "week",
                    seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                    level: float = DEFAULT_LEVEL) -> list[dict[str, Any]]:
    """Per period and value of ``dimension``: the raw and the corrected rate."""
    calibration = queue_calibration(qv)
    groups: dict[tuple[str, str], list[Judged]] = {}
    for item in qv.items:
        groups.setdefault((period_of(item.at, period), item.dimension(dimension)),
                          []).append(item)
    return [{"period": p, "value": v, **_cell(group, qv, calibration, seed, n_resamples,
                                              level)}
            for (p, v), group in sorted(groups.items())]


def format_corrected(c: dict[str, Any]) -> str:
    """Tables: per dimension value, judged traces, the raw and the corrected rate."""
    cal = c["calibration"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def est(d: dict[str, Any]) -> str:
        if d["value"] is None:
            return "-"
        if d["low"] is None:
            return pct(d["value"])
        return f"{pct(d['value'])} [{pct(d['low'])}, {pct(d['high'])}]"

    lines = [f"failure rates corrected for the judge {c['judge_version'] or '(none)'} "
             f"(queue {c['queue']}; Rogan-Gladen, TPR {pct(cal['tpr'])} and TNR "
             f"{pct(cal['tnr'])} measured on {cal['n']} traces the judge and a reviewer "
             f"both labelled; {100 * c['level']:.0f}% bootstrap intervals over both samples)"]
    if cal["tpr"] is None or cal["tnr"] is None:
        lines.append("the corrected rate needs reviewed failures and reviewed passes that "
                     "the judge also labelled")
    rows = [["(all)", c["total"]]] + [[f"{dim}={r['value']}", r] for dim in DIMENSIONS
                                       for r in c["by"][dim]]
    table = [["cell", "judged", "judge rate", "corrected", "reviewed rate"]]
    for name, r in rows:
        table.append([name, str(r["judged"]), est(r["raw"]), est(r["corrected"]),
                      f"{pct(r['reviewed_rate'])} ({r['reviewed_failing']}/{r['reviewed']})"
                      if r["reviewed"] else "-"])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in table]
    return "\n".join(lines)
