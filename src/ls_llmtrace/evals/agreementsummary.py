"""The ``agreement`` command's figures for one queue and judge version, and their tables
(pure apart from what :class:`QueueVerdicts` already read).

On the traces both the judge and a reviewer labelled: the binary figures, the per-category
figures, the token-level span agreement and the slices by model version, product area and
user segment; on the traces several reviewers labelled: the reviewers' reliability with
the judge beside them. Definitions: ``docs/agreement.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ls_llmtrace.errors import InputError
from ls_llmtrace.evals.agreement import (
    Estimate,
    PairwiseAgreement,
    SpanItem,
    binary_agreement,
    category_agreement,
    pairwise_agreement,
    slice_agreement,
    span_agreement,
)
from ls_llmtrace.evals.judged import DIMENSIONS, Judged, QueueVerdicts
from ls_llmtrace.evals.reliability import latest_ratings, reliability
from ls_llmtrace.models import AnnotationRecord


def _range(record: AnnotationRecord) -> tuple[int, int, str | None] | None:
    scope = record.scope
    start = scope.original_start if scope.original_start is not None else scope.start
    end = scope.original_end if scope.original_end is not None else scope.end
    if start is None or end is None:
        return None
    return start, end, record.labels[0] if record.labels else None


def span_items(items: Sequence[Judged]) -> list[SpanItem]:
    """One item per text of each trace (the answer, each message), with both sides'
    ranges in the original text."""
    out = []
    for item in items:
        if item.trace is None:
            continue
        texts: dict[tuple[str, int | None], str] = {("answer", None): item.trace.output}
        for index, message in enumerate(item.trace.messages):
            texts[("message", index)] = message.content
        ranges: dict[tuple[str, int | None], tuple[list[Any], list[Any]]] = {}
        for side, spans in ((0, item.judge_spans), (1, item.human_spans)):
            for span in spans:
                key: tuple[str, int | None] = (
                    str(span.scope.target or "answer"),
                    span.scope.message_index if span.scope.target == "message" else None)
                found = _range(span)
                if key in texts and found is not None:
                    ranges.setdefault(key, ([], []))[side].append(found)
        for key, text in texts.items():
            judge, human = ranges.get(key, ([], []))
            if key == ("answer", None) or judge or human:
                out.append(SpanItem(text, judge, human))
    return out


def summarize(qv: QueueVerdicts, *, seed: int = 0, n_resamples: int = 2000,
              level: float = 0.95, alpha: float = 0.05) -> dict[str, Any]:
    """Every figure of the queue as JSON-ready dicts."""
    both = qv.both()
    schema = qv.schema
    out: dict[str, Any] = {
        "queue": qv.queue, "schema": schema.version_id, "judge_version": qv.judge_version,
        "judge_versions": qv.judge_versions,
        "traces": {"judged": sum(i.judge is not None for i in qv.items),
                   "reviewed": sum(i.human is not None for i in qv.items),
                   "both": len(both)},
        "decided_by": dict(Counter(i.decided_by for i in both if i.decided_by)),
        "seed": seed, "n_resamples": n_resamples, "level": level,
        "binary": None, "categories": [], "spans": None, "slices": {}, "reliability": None,
    }
    if both:
        human = [bool(qv.failing(i.human)) for i in both]
        judge = [bool(qv.failing(i.judge)) for i in both]
        out["binary"] = binary_agreement(human, judge, seed=seed, n_resamples=n_resamples,
                                         level=level).as_dict()
        if schema.categories:
            out["categories"] = [c.as_dict() for c in category_agreement(
                [i.human.labels if i.human else [] for i in both],
                [i.judge.labels if i.judge else [] for i in both], schema.categories,
                seed=seed, n_resamples=n_resamples, level=level)]
        if schema.span_field is not None:
            spans = span_agreement(span_items(both), seed=seed, n_resamples=n_resamples,
                                   level=level)
            out["spans"] = spans.as_dict() if spans else None
        for dim in DIMENSIONS:
            rows = [(i.dimension(dim), h, j) for i, h, j in zip(both, human, judge,
                                                                 strict=True)]
            out["slices"][dim] = [s.as_dict() for s in slice_agreement(
                dim, rows, seed=seed, n_resamples=n_resamples, level=level, alpha=alpha)]
    ratings = latest_ratings(qv.reviewer_records, owner=schema.owner)
    if any(len(r) >= 2 for r in ratings.values()):
        judge_verdicts = {i.trace_id: i.judge.label for i in qv.items
                          if i.judge is not None and i.judge.label is not None}
        out["reliability"] = reliability(ratings, schema, judge_verdicts, seed=seed,
                                         n_resamples=n_resamples, level=level).as_dict()
    return out


# Pairwise judges from a file -----------------------------------------------------------

def read_pairwise(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a pairwise verdict file (JSONL: ``pair_id``, ``human``, ``first``,
    ``second``; verdicts name the better output in the pair's original order, null for
    no answer) and one problem line per row left out."""
    rows, problems = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: line {number}: (record): not JSON: {exc.msg}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}: line {number}: (record): not a JSON object")
            continue
        bad = next((k for k in ("human", "first", "second")
                    if k not in row or not (row[k] is None or isinstance(row[k], str))), None)
        if bad is not None or row.get("human") is None:
            problems.append(f"{path}: line {number}: {bad or 'human'}: missing or not a "
                            "verdict (a string; null for no answer, not for human)")
            continue
        rows.append(row)
    return rows, problems


def pairwise_summary(rows: list[dict[str, Any]], *, seed: int, n_resamples: int,
                     level: float, missing: str | None = None) -> PairwiseAgreement:
    return pairwise_agreement([str(r["human"]) for r in rows], [r["first"] for r in rows],
                              [r["second"] for r in rows], missing=missing, seed=seed,
                              n_resamples=n_resamples, level=level)


# Tables ---------------------------------------------------------------------------------

def _e(d: dict[str, Any] | None, percent: bool = False) -> str:
    if not d:
        return "-"
    return Estimate(d["value"], d["low"], d["high"]).text(percent)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def format_summary(s: dict[str, Any]) -> str:
    t = s["traces"]
    level = f"{100 * s['level']:.0f}%"
    lines = [f"queue {s['queue']} ({s['schema']}), judge {s['judge_version'] or '(none)'}: "
             f"{t['judged']} traces judged, {t['reviewed']} reviewed, {t['both']} both"
             f" ({level} bootstrap intervals, {s['n_resamples']} resamples, seed {s['seed']})"]
    if len(s["judge_versions"]) > 1:
        lines.append("other judge versions: " + ", ".join(
            f"{v} ({n})" for v, n in sorted(s["judge_versions"].items())
            if v != s["judge_version"]) + " (choose with --judge-version)")
    b = s["binary"]
    if b is None:
        lines.append("no trace has both a judge verdict and a reviewer's: "
                     "`ls-llmtrace agreement --fetch` reads the judge's predictions")
    else:
        c = b["confusion_counts"]
        lines += ["", "judge vs reviewers (failure = positive)"]
        lines += _table(["figure", "value [interval]"], [
            ["accuracy", _e(b["accuracy"], True)], ["Cohen's kappa", _e(b["kappa"])],
            ["TPR (failures caught)", _e(b["tpr"], True)],
            ["TNR (passes kept)", _e(b["tnr"], True)],
            ["balanced accuracy", _e(b["balanced_accuracy"], True)],
            ["precision (fail)", _e(b["precision"], True)], ["F1 (fail)", _e(b["f1"])]])
        lines += ["", "confusion matrix (rows: reviewers, columns: judge)"]
        lines += _table(["", "judge fail", "judge pass"], [
            ["reviewer fail", f"{c['tp']} ({_e(b['confusion_shares']['tp'], True)})",
             f"{c['fn']} ({_e(b['confusion_shares']['fn'], True)})"],
            ["reviewer pass", f"{c['fp']} ({_e(b['confusion_shares']['fp'], True)})",
             f"{c['tn']} ({_e(b['confusion_shares']['tn'], True)})"]])
    if s["categories"]:
        lines += ["", "per category"]
        lines += _table(["category", "support", "judge", "precision", "recall", "F1"], [
            [c["category"], str(c["support"]), str(c["predicted"]), _e(c["precision"]),
             _e(c["recall"]), _e(c["f1"])] for c in s["categories"]])
    if s["spans"]:
        sp = s["spans"]
        lines += ["", f"spans (token level, {sp['items']} texts): precision "
                  f"{_e(sp['precision'])}, recall {_e(sp['recall'])}, F1 {_e(sp['f1'])}, "
                  f"same-label F1 {_e(sp['labelled_f1'])}"]
    for dim, rows in s["slices"].items():
        if len(rows) < 2:
            continue
        lines += ["", f"by {dim} (flag: accuracy below the rest, one-sided Fisher exact "
                  "test, Holm-adjusted p < 0.05)"]
        lines += _table([dim, "n", "accuracy", "kappa", "rest", "p (adj.)", ""], [
            [r["value"], str(r["agreement"]["n"]), _e(r["agreement"]["accuracy"], True),
             _e(r["agreement"]["kappa"]),
             "-" if r["rest_accuracy"] is None else f"{100 * r['rest_accuracy']:.0f}%",
             "-" if r["p_adjusted"] is None else f"{r['p_adjusted']:.3g}",
             "BELOW" if r["below_rest"] else ""] for r in rows])
    rel = s["reliability"]
    if rel:
        lines += ["", f"reviewers ({len(rel['reviewers'])}, on {rel['traces_with_two_or_more']}"
                  " traces with two or more): Krippendorff's alpha"]
        lines += _table(["field", "alpha", "units"], [
            [f["field"], "-" if f["alpha"] is None else f"{f['alpha']:.3f}", str(f["units"])]
            for f in [*rel["alpha"], rel["alpha_overall"]]])
        lines += ["", "agreement on the verdict (pairs on shared traces)"]
        rows = [[p["rater"], str(p["pairs"]), _e(p["agreement"], True), _e(p["kappa"])]
                for p in rel["per_reviewer"]]
        rows.append(["all reviewer pairs (the ceiling)", str(rel["among_reviewers"]["pairs"]),
                     _e(rel["among_reviewers"]["agreement"], True),
                     _e(rel["among_reviewers"]["kappa"])])
        if rel["judge"]:
            j = rel["judge"]
            rows.append(["judge vs each reviewer", str(j["pairs"]), _e(j["agreement"], True),
                         _e(j["kappa"])])
        lines += _table(["rater", "pairs", "agreement", "kappa"], rows)
    return "\n".join(lines)


def format_pairwise(p: PairwiseAgreement, source: str) -> str:
    lines = [f"pairwise judge ({source}): {p.n} pairs, both presentation orders"]
    lines += _table(["figure", "value [interval]"], [
        ["accuracy, as stored", f"{p.correct_first}/{p.n} {p.accuracy_first.text(True)}"],
        ["accuracy, swapped", f"{p.correct_second}/{p.n} {p.accuracy_second.text(True)}"],
        ["accuracy, both orders", f"{p.correct_both}/{p.n} {p.accuracy_both.text(True)}"],
        ["accuracy, average", p.accuracy_average.text(True)],
        ["position consistency", f"{p.consistent}/{p.n} {p.consistency.text(True)}"],
        ["kappa between orders", p.kappa_orders.text()]])
    return "\n".join(lines)

