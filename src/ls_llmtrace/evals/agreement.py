"""Judge-vs-human agreement, each figure with a seeded bootstrap interval (pure).

Binary verdicts: ``True`` is the *failing* class (the positive class: what the judge is
there to catch), for the human (the deciding reviewer record) and the judge alike.

The intervals are percentile bootstrap intervals over the items (paired: a resample
draws whole items, the human's and the judge's verdict together). The resampler is our
own numpy one, not ``scipy.stats.bootstrap``, because scipy returns NaN for the whole
interval as soon as one resample leaves a figure undefined (kappa or a rate on a resample
with a single class, frequent on small sets), while here such resamples are left out of
that figure's interval only (:attr:`Estimate.undefined` counts them). It draws exactly
what scipy draws (``rng.integers(0, n, (n_resamples, n))`` from
``np.random.default_rng(seed)``) and takes the same linear quantiles, so on inputs where
no resample is degenerate both give the same interval (tested). The same seed gives the
same intervals.

Pairwise judges (:func:`pairwise_agreement`): verdicts name the better output in the
pair's *original* order (``"1"``/``"2"``, ``None`` for no answer), once with the pair as
stored and once with the two outputs swapped; accuracy against the human preference in
each order and position consistency (the same verdict in both orders).

Spans (:func:`span_agreement`): token-level overlap of the judge's quoted spans with the
reviewers', micro-averaged over the items.

Slices (:func:`slice_agreement`): the same figures per value of a dimension, flagging a
slice whose accuracy is significantly below the rest's (one-sided Fisher exact test of
the slice against all other slices, Holm-adjusted over the slices of the dimension).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
_CHUNK = 250  # resamples drawn at a time (bounds memory on large sets)


@dataclass(frozen=True)
class Estimate:
    """A figure and its bootstrap interval. ``value`` is None when the figure is undefined
    on the data itself (e.g. a true-positive rate without failures); ``undefined`` counts
    the resamples on which it was undefined (left out of the interval)."""

    value: float | None
    low: float | None
    high: float | None
    undefined: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high,
                "undefined_resamples": self.undefined}

    def text(self, percent: bool = False) -> str:
        """``0.81 [0.74, 0.87]`` (or ``81% [74%, 87%]``); ``-`` when undefined."""
        if self.value is None:
            return "-"

        def f(v: float | None) -> str:
            if v is None:
                return "?"
            return f"{100 * v:.0f}%" if percent else f"{v:.2f}"
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"


# The resampler ---------------------------------------------------------------------------

Statistic = Callable[..., np.ndarray]


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterable[np.ndarray]:
    """Blocks of resampled item indices, ``(block, n)`` each, from ``default_rng(seed)``:
    the same stream as one ``rng.integers(0, n, (n_resamples, n))`` draw."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, _CHUNK):
        yield rng.integers(0, n, (min(_CHUNK, n_resamples - start), n))


def bootstrap(statistic: Statistic, arrays: Sequence[np.ndarray], *, n_resamples: int,
              seed: int) -> np.ndarray:
    """``statistic`` on ``n_resamples`` paired resamples of the items of ``arrays`` (all
    the same length along the first axis). ``statistic(*arrays)`` takes arrays with a
    leading resample axis ``(r, n, ...)`` and returns ``(r,)`` or ``(r, k)``."""
    n = len(arrays[0])
    out = [statistic(*(a[index] for a in arrays))
           for index in resample_indices(n, n_resamples, seed)]
    return np.concatenate(out, axis=0)


def estimates(point: np.ndarray, draws: np.ndarray, level: float) -> list[Estimate]:
    """One :class:`Estimate` per column of ``draws`` (``(r,)`` or ``(r, k)``)."""
    point = np.atleast_1d(np.asarray(point, dtype=float))
    draws = np.asarray(draws, dtype=float).reshape(len(draws), -1)
    tail = (1 - level) / 2
    out = []
    for column, value in enumerate(point):
        values = draws[:, column]
        defined = values[~np.isnan(values)]
        undefined = int(len(values) - len(defined))
        if np.isnan(value):
            out.append(Estimate(None, None, None, undefined))
        elif len(defined) == 0:
            out.append(Estimate(float(value), None, None, undefined))
        else:
            low, high = np.quantile(defined, [tail, 1 - tail])
            out.append(Estimate(float(value), float(low), float(high), undefined))
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


# Binary agreement -----------------------------------------------------------------------

BINARY_FIGURES = ("accuracy", "kappa", "tpr", "tnr", "balanced_accuracy", "precision", "f1",
                  "tp_share", "fn_share", "fp_share", "tn_share")


def binary_figures(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Every figure of :data:`BINARY_FIGURES` along the last axis: ``(..., n)`` boolean
    arrays in, ``(..., len(BINARY_FIGURES))`` out, NaN where a figure is undefined."""
    h, j = np.asarray(human, dtype=bool), np.asarray(judge, dtype=bool)
    n = h.shape[-1]
    tp = np.sum(h & j, axis=-1).astype(float)
    fn = np.sum(h & ~j, axis=-1).astype(float)
    fp = np.sum(~h & j, axis=-1).astype(float)
    tn = np.sum(~h & ~j, axis=-1).astype(float)
    accuracy = (tp + tn) / n
    p_h, p_j = (tp + fn) / n, (tp + fp) / n
    expected = p_h * p_j + (1 - p_h) * (1 - p_j)
    kappa = np.where(np.isclose(expected, 1.0), np.nan,
                     _ratio(accuracy - expected, np.where(np.isclose(expected, 1.0), 0,
                                                          1 - expected)))
    tpr, tnr = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    precision = _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return np.stack([accuracy, kappa, tpr, tnr, (tpr + tnr) / 2, precision, f1,
                     tp / n, fn / n, fp / n, tn / n], axis=-1)


@dataclass(frozen=True)
class BinaryAgreement:
    """A judge's pass/fail verdicts against the human ones (failure positive).

    ``tpr`` (recall of failures), ``tnr`` (specificity), ``precision`` and ``f1`` are of
    the failing class; the confusion matrix is given as counts and as shares of ``n``
    with intervals (``confusion["tp"]`` etc.)."""

    n: int
    tp: int
    fn: int
    fp: int
    tn: int
    accuracy: Estimate
    kappa: Estimate
    tpr: Estimate
    tnr: Estimate
    balanced_accuracy: Estimate
    precision: Estimate
    f1: Estimate
    confusion: dict[str, Estimate]
    level: float
    n_resamples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "confusion_counts": {"tp": self.tp, "fn": self.fn, "fp": self.fp,
                                              "tn": self.tn},
            **{name: getattr(self, name).as_dict() for name in
               ("accuracy", "kappa", "tpr", "tnr", "balanced_accuracy", "precision", "f1")},
            "confusion_shares": {k: v.as_dict() for k, v in self.confusion.items()},
            "level": self.level, "n_resamples": self.n_resamples, "seed": self.seed,
        }


def _as_bool(values: Sequence[bool] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} verdicts must be one-dimensional")
    if array.dtype != bool and not np.isin(array, [0, 1]).all():
        raise ValueError(f"{what} verdicts must be booleans (True = failing)")
    return array.astype(bool)


def binary_agreement(human: Sequence[bool] | np.ndarray, judge: Sequence[bool] | np.ndarray,
                     *, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                     level: float = DEFAULT_LEVEL) -> BinaryAgreement:
    """Agreement of ``judge`` with ``human`` (same items, same order; True = failing).

    ``n_resamples=0`` gives the point values with no interval."""
    h, j = _as_bool(human, "human"), _as_bool(judge, "judge")
    if len(h) != len(j):
        raise ValueError(f"human and judge verdicts differ in length ({len(h)} vs {len(j)})")
    if len(h) == 0:
        raise ValueError("no items to measure agreement on")
    point = binary_figures(h, j)
    draws = (bootstrap(binary_figures, [h, j], n_resamples=n_resamples, seed=seed)
             if n_resamples > 0 else np.full((1, len(BINARY_FIGURES)), np.nan))
    found = dict(zip(BINARY_FIGURES, estimates(point, draws, level), strict=True))
    if n_resamples <= 0:
        found = {k: Estimate(v.value, None, None) for k, v in found.items()}
    return BinaryAgreement(
        n=len(h), tp=int(np.sum(h & j)), fn=int(np.sum(h & ~j)), fp=int(np.sum(~h & j)),
        tn=int(np.sum(~h & ~j)),
        accuracy=found["accuracy"], kappa=found["kappa"], tpr=found["tpr"],
        tnr=found["tnr"], balanced_accuracy=found["balanced_accuracy"],
        precision=found["precision"], f1=found["f1"],
        confusion={k: found[f"{k}_share"] for k in ("tp", "fn", "fp", "tn")},
        level=level, n_resamples=n_resamples, seed=seed)


# Per-category precision / recall / F1 ------------------------------------------------------

@dataclass(frozen=True)
class CategoryAgreement:
    """One failure category: the judge's choice of it against the human's, over the items
    (``support``: items the human gave it; ``predicted``: items the judge gave it)."""

    category: str
    support: int
    predicted: int
    precision: Estimate
    recall: Estimate
    f1: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {"category": self.category, "support": self.support,
                "predicted": self.predicted, "precision": self.precision.as_dict(),
                "recall": self.recall.as_dict(), "f1": self.f1.as_dict()}


def _category_figures(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """``(..., n, k)`` indicator arrays -> ``(..., 3k)``: precision, recall, F1 per column."""
    tp = np.sum(human & judge, axis=-2).astype(float)
    fp = np.sum(~human & judge, axis=-2).astype(float)
    fn = np.sum(human & ~judge, axis=-2).astype(float)
    return np.concatenate([_ratio(tp, tp + fp), _ratio(tp, tp + fn),
                           _ratio(2 * tp, 2 * tp + fp + fn)], axis=-1)


def category_agreement(human: Sequence[Iterable[str]], judge: Sequence[Iterable[str]],
                       categories: Sequence[str] | None = None, *, seed: int = 0,
                       n_resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                       ) -> list[CategoryAgreement]:
    """Per category: precision, recall and F1 of the judge's categories against the
    human's on the same items (each item: the set of categories given, possibly empty).
    ``categories`` fixes the list and order (default: every category seen, sorted)."""
    if len(human) != len(judge):
        raise ValueError("human and judge category lists differ in length")
    hs, js = [set(x) for x in human], [set(x) for x in judge]
    names = list(categories) if categories is not None else sorted(set().union(*hs, *js))
    if not names or not hs:
        return []
    h = np.array([[c in s for c in names] for s in hs], dtype=bool)
    j = np.array([[c in s for c in names] for s in js], dtype=bool)
    point = _category_figures(h, j)
    k = len(names)
    if n_resamples > 0:
        draws = bootstrap(_category_figures, [h, j], n_resamples=n_resamples, seed=seed)
        found = estimates(point, draws, level)
    else:
        found = [Estimate(None if np.isnan(v) else float(v), None, None) for v in point]
    return [CategoryAgreement(name, int(h[:, i].sum()), int(j[:, i].sum()), found[i],
                              found[k + i], found[2 * k + i])
            for i, name in enumerate(names)]


# Pairwise judges ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PairwiseAgreement:
    """A pairwise judge run in both presentation orders, against the human preference.

    ``accuracy_first``/``accuracy_second``: share of pairs whose verdict in that order is
    the human's preferred output (no answer counts as wrong); ``accuracy_both``: right
    in both orders; ``accuracy_average``: the mean of the two; ``consistency``: share of
    pairs with the same verdict in both orders; ``kappa_orders``: Cohen's kappa between
    the two orders' verdicts."""

    n: int
    correct_first: int
    correct_second: int
    correct_both: int
    consistent: int
    accuracy_first: Estimate
    accuracy_second: Estimate
    accuracy_both: Estimate
    accuracy_average: Estimate
    consistency: Estimate
    kappa_orders: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "correct_first": self.correct_first,
                "correct_second": self.correct_second, "correct_both": self.correct_both,
                "consistent": self.consistent,
                **{name: getattr(self, name).as_dict() for name in
                   ("accuracy_first", "accuracy_second", "accuracy_both",
                    "accuracy_average", "consistency", "kappa_orders")}}


def _nominal_kappa(a: np.ndarray, b: np.ndarray, codes: int) -> np.ndarray:
    """Cohen's kappa of integer-coded raters along the last axis (NaN when undefined)."""
    observed = np.mean(a == b, axis=-1)
    expected = sum(np.mean(a == c, axis=-1) * np.mean(b == c, axis=-1) for c in range(codes))
    expected = np.asarray(expected, dtype=float)
    degenerate = np.isclose(expected, 1.0)
    out: np.ndarray = np.where(degenerate, np.nan,
                               (observed - expected) / np.where(degenerate, 1, 1 - expected))
    return out


def pairwise_agreement(human: Sequence[str], first: Sequence[str | None],
                       second: Sequence[str | None], *, missing: str | None = None,
                       seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                       level: float = DEFAULT_LEVEL) -> PairwiseAgreement:
    """Accuracy and position consistency of a pairwise judge.

    Each verdict names the better output in the pair's original order (``"1"``/``"2"``,
    or ``"left"``/``"right"``: any two names; ``None`` = no answer), ``first`` with the
    pair presented as stored, ``second`` with the outputs swapped (already mapped back).
    For the kappa between the orders a missing verdict is its own category, or counts as
    ``missing`` when given (LLMBar's authors count it as ``"2"``); accuracy and
    consistency compare the verdicts as given (two missing verdicts are consistent)."""
    if not len(human) == len(first) == len(second):
        raise ValueError("human, first and second verdicts differ in length")
    if not human:
        raise ValueError("no pairs to measure agreement on")
    names = sorted({str(v) for v in (*human, *first, *second) if v is not None})
    code = {name: i for i, name in enumerate(names)}

    def encode(values: Sequence[str | None], fill: str | None) -> np.ndarray:
        out = []
        for v in values:
            v = v if v is not None else fill
            out.append(code[v] if v is not None else len(names))
        return np.array(out, dtype=int)

    if missing is not None and missing not in code:
        code[missing] = len(code)
    h = encode(human, None)
    f, s = encode(first, None), encode(second, None)
    fk, sk = encode(first, missing), encode(second, missing)
    codes = len(code) + 1

    def figures(h: np.ndarray, f: np.ndarray, s: np.ndarray, fk: np.ndarray,
                sk: np.ndarray) -> np.ndarray:
        right_f, right_s = f == h, s == h
        acc_f, acc_s = right_f.mean(axis=-1), right_s.mean(axis=-1)
        return np.stack([acc_f, acc_s, (right_f & right_s).mean(axis=-1), (acc_f + acc_s) / 2,
                         (f == s).mean(axis=-1), _nominal_kappa(fk, sk, codes)], axis=-1)

    arrays = [h, f, s, fk, sk]
    point = figures(*arrays)
    if n_resamples > 0:
        found = estimates(point, bootstrap(figures, arrays, n_resamples=n_resamples,
                                           seed=seed), level)
    else:
        found = [Estimate(None if np.isnan(v) else float(v), None, None) for v in point]
    return PairwiseAgreement(
        n=len(h), correct_first=int(np.sum(f == h)), correct_second=int(np.sum(s == h)),
        correct_both=int(np.sum((f == h) & (s == h))), consistent=int(np.sum(f == s)),
        accuracy_first=found[0], accuracy_second=found[1], accuracy_both=found[2],
        accuracy_average=found[3], consistency=found[4], kappa_orders=found[5])


# Spans -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class SpanItem:
    """One text both sides marked: ``(start, end, label)`` character ranges each (label
    may be None)."""

    text: str
    judge: Sequence[tuple[int, int, str | None]]
    human: Sequence[tuple[int, int, str | None]]


@dataclass(frozen=True)
class SpanAgreement:
    """Token-level overlap: a token is marked by a side when one of its spans covers any
    of its characters. ``precision``: share of the judge's marked tokens the reviewers
    marked too; ``recall``: share of the reviewers' marked tokens the judge marked; ``f1``
    their harmonic mean, micro-averaged over items; ``labelled_f1`` counts a token only
    when both gave it the same label."""

    items: int
    judge_tokens: int
    human_tokens: int
    overlap_tokens: int
    precision: Estimate
    recall: Estimate
    f1: Estimate
    labelled_f1: Estimate

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "judge_tokens": self.judge_tokens,
                "human_tokens": self.human_tokens, "overlap_tokens": self.overlap_tokens,
                **{name: getattr(self, name).as_dict()
                   for name in ("precision", "recall", "f1", "labelled_f1")}}


def _marked(tokens: list[tuple[int, int]], spans: Sequence[tuple[int, int, str | None]],
            ) -> set[tuple[int, str | None]]:
    out = set()
    for start, end, label in spans:
        for i, (t_start, t_end) in enumerate(tokens):
            if t_start < end and start < t_end:
                out.add((i, label))
    return out


def span_counts(item: SpanItem) -> tuple[int, int, int, int, int, int]:
    """``(judge, human, overlap)`` token counts, then the same for labelled tokens."""
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(item.text)]
    judge, human = _marked(tokens, item.judge), _marked(tokens, item.human)
    j_any, h_any = {i for i, _ in judge}, {i for i, _ in human}
    return (len(j_any), len(h_any), len(j_any & h_any), len(judge), len(human),
            len(judge & human))


def _span_figures(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-2).astype(float)
    j, h, o, jl, hl, ol = (total[..., i] for i in range(6))
    return np.stack([_ratio(o, j), _ratio(o, h), _ratio(2 * o, j + h),
                     _ratio(2 * ol, jl + hl)], axis=-1)


def span_agreement(items: Sequence[SpanItem], *, seed: int = 0,
                   n_resamples: int = DEFAULT_RESAMPLES,
                   level: float = DEFAULT_LEVEL) -> SpanAgreement | None:
    """Token-level span agreement over ``items`` (None without items)."""
    if not items:
        return None
    counts = np.array([span_counts(item) for item in items], dtype=float)
    point = _span_figures(counts)
    if n_resamples > 0:
        found = estimates(point, bootstrap(_span_figures, [counts], n_resamples=n_resamples,
                                           seed=seed), level)
    else:
        found = [Estimate(None if np.isnan(v) else float(v), None, None) for v in point]
    total = counts.sum(axis=0)
    return SpanAgreement(len(items), int(total[0]), int(total[1]), int(total[2]), *found)


# Slices ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SliceAgreement:
    """One value of a dimension: its agreement, and whether its accuracy is
    significantly below the other slices' together (``p_value``: one-sided Fisher exact
    test; ``p_adjusted``: Holm-adjusted over the dimension's slices; ``below``:
    ``p_adjusted < alpha``)."""

    dimension: str
    value: str
    agreement: BinaryAgreement
    rest_n: int
    rest_accuracy: float | None
    p_value: float | None
    p_adjusted: float | None
    below: bool

    def as_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "value": self.value,
                "agreement": self.agreement.as_dict(), "rest_n": self.rest_n,
                "rest_accuracy": self.rest_accuracy, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "below_rest": self.below}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def slice_agreement(dimension: str, rows: Sequence[tuple[str, bool, bool]], *,
                    seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES,
                    level: float = DEFAULT_LEVEL, alpha: float = 0.05,
                    ) -> list[SliceAgreement]:
    """``rows``: ``(slice value, human failing, judge failing)`` per item. One entry per
    value, sorted by value; with a single slice there is no rest to compare with."""
    from scipy.stats import fisher_exact

    values = sorted({r[0] for r in rows})
    agree = {v: [0, 0] for v in values}  # value -> [agreeing, disagreeing]
    for value, h, j in rows:
        agree[value][0 if bool(h) == bool(j) else 1] += 1
    total_agree = sum(a for a, _ in agree.values())
    total_n = len(rows)
    p_values: list[float | None] = []
    for v in values:
        a, d = agree[v]
        rest_a, rest_d = total_agree - a, (total_n - total_agree) - d
        if rest_a + rest_d == 0:
            p_values.append(None)
            continue
        result = fisher_exact([[a, d], [rest_a, rest_d]], alternative="less")
        p_values.append(float(result.pvalue))
    tested = [p for p in p_values if p is not None]
    adjusted_iter = iter(holm(tested))
    adjusted = [next(adjusted_iter) if p is not None else None for p in p_values]
    out = []
    for v, p, p_adj in zip(values, p_values, adjusted, strict=True):
        slice_h = [r[1] for r in rows if r[0] == v]
        slice_j = [r[2] for r in rows if r[0] == v]
        rest_n = total_n - len(slice_h)
        rest_accuracy = (total_agree - agree[v][0]) / rest_n if rest_n else None
        out.append(SliceAgreement(
            dimension, v, binary_agreement(slice_h, slice_j, seed=seed, n_resamples=n_resamples,
                                           level=level),
            rest_n, rest_accuracy, p, p_adj, p_adj is not None and p_adj < alpha))
    return out

