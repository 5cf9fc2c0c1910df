"""Human vs human: how far the reviewers agree with each other, and the judge next to
them (pure).

Input: the trace-level reviewer records of a queue, several per trace when several
reviewers labelled it (sync keeps one record per annotation); per (trace, reviewer) the
latest record counts. The schema owner's records are left out: an adjudication is a
decision taken after seeing the disagreement, not an independent rating.

- **Krippendorff's alpha** (the ``krippendorff`` package) per field: ``verdict``
  (nominal), each failure category as a yes/no field (nominal; a rating without it is a
  "no"), ``score`` (interval); **overall**: nominal alpha over the verdict and category
  units together (each (trace, field) one unit). Units with fewer than two ratings do not
  count (alpha's own rule); alpha is None when it is undefined (fewer than two values in
  all the ratings).
- **Each reviewer's agreement with the others**: over every pair (this reviewer, another
  reviewer) on a shared trace, the share of pairs with the same verdict and Cohen's kappa
  of the pooled pairs.
- **The judge beside them**: the same two figures for the pairs (judge, reviewer) on the
  traces at least two reviewers labelled, next to the reviewers' own pairwise figures on
  those traces. Reviewers who agree with each other 85% of the time set the ceiling a
  judge can be shown to reach against them.

The pairwise figures have percentile bootstrap intervals over traces (seeded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from typing import Any, Literal

import numpy as np

from ls_llmtrace.evals.agreement import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    Estimate,
    estimates,
    resample_indices,
)
from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.schema.model import AnnotationSchema

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Rating:
    """One rater's trace-level answer."""

    verdict: str
    categories: frozenset[str] = frozenset()
    score: float | None = None


def latest_ratings(records: Iterable[AnnotationRecord], owner: str | None = None,
                   ) -> dict[str, dict[str, Rating]]:
    """trace id -> reviewer -> their latest rating (records without an author, cancelled,
    deleted, unlabelled or by ``owner`` left out)."""
    best: dict[tuple[str, str], AnnotationRecord] = {}
    for r in records:
        if (r.author is None or r.label is None or r.was_cancelled or r.deleted
                or r.scope.kind != "trace" or (owner is not None and r.author == owner)):
            continue
        key = (r.trace_id, r.author)
        current = best.get(key)
        when = r.updated_at or r.created_at or _EPOCH
        if current is None or (when, r.record_key) > (
                current.updated_at or current.created_at or _EPOCH, current.record_key):
            best[key] = r
    out: dict[str, dict[str, Rating]] = {}
    for (trace_id, author), r in sorted(best.items()):
        out.setdefault(trace_id, {})[author] = Rating(r.label or "", frozenset(r.labels),
                                                      r.score)
    return out


@dataclass(frozen=True)
class FieldAlpha:
    field: str
    level: str  # nominal / interval
    alpha: float | None
    units: int  # units with at least two ratings

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "level": self.level, "alpha": self.alpha,
                "units": self.units}


def _alpha(matrix: np.ndarray, level: Literal["nominal", "interval"]) -> float | None:
    import krippendorff

    pairable = int(np.sum(np.sum(~np.isnan(matrix), axis=0) >= 2)) if matrix.size else 0
    if pairable == 0:
        return None
    values = matrix[~np.isnan(matrix)]
    if len(np.unique(values)) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def alpha_matrix(ratings: dict[str, dict[str, Rating]], reviewers: Sequence[str],
                 value: Any) -> np.ndarray:
    """Reviewers x traces, ``value(rating)`` (a number or None) or NaN when missing."""
    traces = sorted(ratings)
    matrix = np.full((len(reviewers), len(traces)), np.nan)
    for column, trace_id in enumerate(traces):
        for row, reviewer in enumerate(reviewers):
            rating = ratings[trace_id].get(reviewer)
            found = value(rating) if rating is not None else None
            if found is not None:
                matrix[row, column] = float(found)
    return matrix


@dataclass(frozen=True)
class PairAgreement:
    """A rater against others over pairs on shared traces."""

    rater: str
    traces: int
    pairs: int
    agreement: Estimate  # share of pairs with the same verdict
    kappa: Estimate  # Cohen's kappa of the pooled pairs

    def as_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "traces": self.traces, "pairs": self.pairs,
                "agreement": self.agreement.as_dict(), "kappa": self.kappa.as_dict()}


def _pair_figures(counts: np.ndarray, codes: int) -> np.ndarray:
    """``(..., traces, 2 + 2*codes)`` per-trace [agreeing pairs, pairs, marginal counts of
    the first and the second rater per code] -> (..., 2): agreement share, kappa."""
    total = counts.sum(axis=-2)
    agree, pairs = total[..., 0], total[..., 1]
    first, second = total[..., 2:2 + codes], total[..., 2 + codes:]
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = agree / pairs
        expected = np.sum(first * second, axis=-1) / (pairs * pairs)
        kappa = np.where(np.isclose(expected, 1.0), np.nan,
                         (observed - expected) / (1 - expected))
    return np.stack([observed, kappa], axis=-1)


def pair_agreement(rater: str, pairs_by_trace: dict[str, list[tuple[str, str]]],
                   codes: dict[str, int], *, seed: int, n_resamples: int,
                   level: float) -> PairAgreement:
    """``pairs_by_trace``: trace -> [(this rater's verdict, the other's verdict)]."""
    traces = sorted(t for t, pairs in pairs_by_trace.items() if pairs)
    k = len(codes)
    counts = np.zeros((len(traces), 2 + 2 * k))
    for row, trace_id in enumerate(traces):
        for mine, theirs in pairs_by_trace[trace_id]:
            counts[row, 0] += mine == theirs
            counts[row, 1] += 1
            counts[row, 2 + codes[mine]] += 1
            counts[row, 2 + k + codes[theirs]] += 1
    n_pairs = int(counts[:, 1].sum())
    if not traces:
        empty = Estimate(None, None, None)
        return PairAgreement(rater, 0, 0, empty, empty)
    point = _pair_figures(counts, k)
    if n_resamples > 0:
        draws = np.concatenate([_pair_figures(counts[index], k) for index in
                                resample_indices(len(traces), n_resamples, seed)])
        found = estimates(point, draws, level)
    else:
        found = [Estimate(None if np.isnan(v) else float(v), None, None) for v in point]
    return PairAgreement(rater, len(traces), n_pairs, found[0], found[1])


@dataclass(frozen=True)
class Reliability:
    reviewers: list[str]
    traces: int  # traces with at least two reviewers
    fields: list[FieldAlpha]
    overall: FieldAlpha
    per_reviewer: list[PairAgreement]
    among_reviewers: PairAgreement  # every reviewer pair on those traces
    judge: PairAgreement | None  # judge vs each reviewer on the same traces

    def as_dict(self) -> dict[str, Any]:
        return {"reviewers": self.reviewers, "traces_with_two_or_more": self.traces,
                "alpha": [f.as_dict() for f in self.fields],
                "alpha_overall": self.overall.as_dict(),
                "per_reviewer": [p.as_dict() for p in self.per_reviewer],
                "among_reviewers": self.among_reviewers.as_dict(),
                "judge": self.judge.as_dict() if self.judge else None}


def reliability(ratings: dict[str, dict[str, Rating]], schema: AnnotationSchema,
                judge: dict[str, str] | None = None, *, seed: int = 0,
                n_resamples: int = DEFAULT_RESAMPLES,
                level: float = DEFAULT_LEVEL) -> Reliability:
    """Reliability of the reviewers' ratings (trace -> reviewer -> rating) under
    ``schema``, and the judge's verdicts (trace -> verdict) beside them."""
    shared = {t: r for t, r in ratings.items() if len(r) >= 2}
    reviewers = sorted({a for r in shared.values() for a in r})
    verdicts = sorted({x.verdict for r in shared.values() for x in r.values()}
                      | set(schema.label_field.values if schema.label_field else [])
                      | set((judge or {}).values()))
    code = {v: i for i, v in enumerate(verdicts)}
    fields = [FieldAlpha("verdict", "nominal",
                         _alpha(alpha_matrix(shared, reviewers, lambda x: code[x.verdict]),
                                "nominal"), _units(shared))]
    nominal = [alpha_matrix(shared, reviewers, lambda x: code[x.verdict])]
    for category in schema.categories:
        matrix = alpha_matrix(shared, reviewers,
                              lambda x, c=category: int(c in x.categories))
        nominal.append(matrix)
        fields.append(FieldAlpha(f"category:{category}", "nominal",
                                 _alpha(matrix, "nominal"), _units(shared)))
    if schema.score_field is not None:
        matrix = alpha_matrix(shared, reviewers, lambda x: x.score)
        fields.append(FieldAlpha("score", "interval", _alpha(matrix, "interval"),
                                 int(np.sum(np.sum(~np.isnan(matrix), axis=0) >= 2))))
    # Overall: the nominal fields' units side by side; verdict codes and yes/no codes are
    # kept apart (offset) so a "fail" never equals a category's "yes".
    offset_blocks = [nominal[0]] + [m + len(verdicts) for m in nominal[1:]]
    stacked = np.concatenate(offset_blocks, axis=1) if offset_blocks else np.empty((0, 0))
    overall = FieldAlpha("overall", "nominal", _alpha(stacked, "nominal"),
                         _units(shared) * len(nominal))
    per_reviewer = []
    for reviewer in reviewers:
        pairs = {t: [(r[reviewer].verdict, r[o].verdict) for o in r if o != reviewer]
                 for t, r in shared.items() if reviewer in r}
        per_reviewer.append(pair_agreement(reviewer, pairs, code, seed=seed,
                                           n_resamples=n_resamples, level=level))
    among = {t: [(r[a].verdict, r[b].verdict) for a, b in combinations(sorted(r), 2)]
             for t, r in shared.items()}
    judge_pairs = None
    if judge:
        judge_pairs = pair_agreement(
            "judge", {t: [(judge[t], x.verdict) for x in r.values()]
                      for t, r in shared.items() if t in judge},
            code, seed=seed, n_resamples=n_resamples, level=level)
    return Reliability(reviewers, len(shared), fields, overall, per_reviewer,
                       pair_agreement("reviewers", among, code, seed=seed,
                                      n_resamples=n_resamples, level=level), judge_pairs)


def _units(shared: dict[str, dict[str, Rating]]) -> int:
    return len(shared)
