"""Calibration (``calibrate``): tune a judge on the reviewers' labels, save it as a new
judge version.

The labels: the deciding reviewer record (:func:`fewshot.deciding_records`) of each trace
of a queue at its current schema version, joined to the stored trace and shown to the
judge as its Label Studio task shows it. Below ``min_labels`` of them, with one class
only, or with fewer than three of the rarer class (one per split), calibration refuses
(:class:`TooFewLabels`, exit 4). Failure is the positive class, as everywhere.

The split: stratified train / dev / test (scikit-learn ``train_test_split``, seeded; 60 /
20 / 20 by default). What may be chosen:

- **learned evaluator**: the feature groups, the regularization ``C``, the longest n-gram
  (:class:`LearnedParams`), each combination fitted on train;
- **LLM judge**: the few-shot cases (the current ones, none, or seeded draws of train
  traces with both verdicts) and reviewer-labelled answers added to the rubric (one per
  verdict, from train), each prompt asked once per dev trace;
- **both**: a decision threshold on the judge's score (fail below it), tried on the
  same verdicts at no extra cost, or none (the judge's own label).

The choice maximizes Cohen's kappa on dev; ties keep the current setting (a new version
only when it is better on dev), then the earlier candidate. *Before* is the current
setting (the active calibration, else the defaults), *after* the chosen one; both are
fitted on the same train split (learned) and measured on the test split, which neither
the fit nor the choice saw: accuracy, kappa, TPR/TNR... with seeded bootstrap intervals
(:func:`ls_llmtrace.evals.agreement.binary_agreement`). A judge verdict missing on a
trace (the LLM's reply rejected) counts as a disagreement.

Saving records the chosen params as the active calibration of (judge, schema version) in
the store: the backend builds its judge from it (the learned evaluator is refitted on
*all* labels with the chosen settings, as it is on every retrain), so its
``model_version`` changes and Label Studio's "retrieve predictions" asks again.

More labels: the interval's width shrinks about as 1/sqrt(n), so the test split needs
``n_test x (width / target)^2`` items for a kappa interval ``target`` wide, and the
labelled set that over the test share (:func:`labels_for_width`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, JudgeReplyError, LLMTraceError
from ls_llmtrace.evals.agreement import BinaryAgreement, binary_agreement
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.judging.judges.base import Verdict, apply_threshold
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store
from ls_llmtrace.store.calibrations import Calibration

JudgeKind = Literal["learned", "llm"]
FORMAT = "ls-llmtrace.calibration/1"
# A small grid on purpose: with 100-200 labels the dev split holds 20-40 traces, and the
# more settings are tried on it, the more the best of them is best by chance.
THRESHOLDS: tuple[float | None, ...] = (None, 0.3, 0.4, 0.5, 0.6, 0.7)
LEARNED_FEATURES: tuple[tuple[str, ...], ...] = (
    ("answer", "conversation", "shape"), ("answer", "shape"), ("answer",))
LEARNED_C: tuple[float, ...] = (0.5, 2.0, 8.0)
LEARNED_NGRAMS: tuple[int, ...] = (2,)
WIDTH_METHOD = ("1/sqrt(n) scaling of the test kappa interval's width: test items needed "
                "= n_test x (width / target)^2; labels needed = that / the test share")


class TooFewLabels(LLMTraceError):
    """Not enough human labels (or one class only) to calibrate: exit 4."""

    exit_code = 4


@dataclass(frozen=True)
class Labelled:
    """One human-labelled trace: its task data as the judge sees it and the verdict."""

    trace_id: str
    data: dict[str, Any]
    label: str
    fail: bool
    trace: Trace
    record: AnnotationRecord


def labelled_items(store: Store, schema: AnnotationSchema,
                   project_id: int | None = None) -> list[Labelled]:
    """The deciding reviewer record of every trace at ``schema``'s version (of
    ``project_id`` when given; records without a project count too), with its trace."""
    from ls_llmtrace.judging.judges.fewshot import deciding_records

    records = [r for r in store.records(source="reviewer")
               if r.schema_id == schema.id and r.schema_version == schema.version
               and (project_id is None or r.ls_project_id in (None, project_id))]
    options = ReviewOptions.from_settings()
    items = []
    for trace_id, record in sorted(deciding_records(records, schema.owner).items()):
        trace = store.trace(trace_id)
        if trace is None or record.label is None:
            continue
        data = trace_to_task(trace, schema, options)["data"]
        items.append(Labelled(trace_id, data, record.label, schema.is_failing(record.label),
                              trace, record))
    return items


def check_enough(items: Sequence[Labelled], minimum: int, where: str) -> None:
    """Refuse (one line, exit 4) below ``minimum`` labels, with one class, or with fewer
    than three of the rarer class."""
    n = len(items)
    if n < minimum:
        raise TooFewLabels(f"{where} has {n} human-labelled traces; calibrate needs at least "
                           f"{minimum} (--min-labels, LS_LLMTRACE_CALIBRATE_MIN_LABELS): "
                           "label more and sync")
    failing = sum(1 for i in items if i.fail)
    if failing in (0, n):
        label = items[0].label
        raise TooFewLabels(f"all {n} human labels of {where} are {label!r}: calibration "
                           "needs both failing and passing traces")
    rarer = min(failing, n - failing)
    if rarer < 3:
        kind = "failing" if failing < n - failing else "passing"
        raise TooFewLabels(f"{where} has only {rarer} {kind} traces: the stratified "
                           "train/dev/test split needs at least 3 (one per split)")


@dataclass(frozen=True)
class Split:
    train: list[int]
    dev: list[int]
    test: list[int]

    def as_dict(self, items: Sequence[Labelled]) -> dict[str, Any]:
        def part(index: list[int]) -> dict[str, int]:
            return {"n": len(index), "failing": sum(1 for i in index if items[i].fail)}
        return {"train": part(self.train), "dev": part(self.dev), "test": part(self.test)}


def split_items(fails: Sequence[bool], fractions: tuple[float, float, float],
                seed: int) -> Split:
    """A stratified train / dev / test split of item indices (seeded)."""
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or any(f <= 0 for f in fractions) or \
            not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split {fractions}: three positive shares adding up to 1, "
                          "e.g. 0.6,0.2,0.2")
    index = np.arange(len(fails))
    labels = np.asarray(fails, dtype=bool)
    n = len(index)
    classes = 2
    n_test = max(classes, round(fractions[2] * n))
    rest, test = train_test_split(index, test_size=n_test, stratify=labels,
                                  random_state=seed)
    n_dev = max(classes, round(fractions[1] * n))
    train, dev = train_test_split(rest, test_size=n_dev, stratify=labels[rest],
                                  random_state=seed)
    return Split(sorted(int(i) for i in train), sorted(int(i) for i in dev),
                 sorted(int(i) for i in test))


# Candidates -------------------------------------------------------------------------------

@dataclass
class Base:
    """One judge setting before the threshold: a fitted model or a prompt. ``verdicts``
    answers with the raw verdicts (None: no valid verdict) of some items."""

    name: str
    params: dict[str, Any]
    describe: str
    current: bool
    verdicts: Callable[[list[Labelled]], list[Verdict | None]]
    version: str = ""


@dataclass(frozen=True)
class Scored:
    base: str
    threshold: float | None
    dev_kappa: float
    current: bool


def decisions(verdicts: Sequence[Verdict | None], threshold: float | None,
              items: Sequence[Labelled], schema: AnnotationSchema, passing: str,
              failing: str) -> list[bool]:
    """Judge fails per item at ``threshold``; no verdict = the opposite of the human."""
    out = []
    for verdict, item in zip(verdicts, items, strict=True):
        if verdict is None:
            out.append(not item.fail)
        else:
            out.append(schema.is_failing(apply_threshold(verdict, threshold, passing,
                                                         failing).label))
    return out


def _kappa(human: Sequence[bool], judge: Sequence[bool]) -> float:
    value = binary_agreement(list(human), list(judge), n_resamples=0).kappa.value
    return -1.0 if value is None else float(value)


def choose(scored: Sequence[Scored]) -> Scored:
    """The best on dev kappa; ties: the current setting, then the earlier candidate."""
    ranked = sorted(enumerate(scored),
                    key=lambda p: (-round(p[1].dev_kappa, 12), not p[1].current, p[0]))
    return ranked[0][1]


def labels_for_width(n_test: int, n_total: int, test_share: float, width: float | None,
                     target: float) -> dict[str, Any]:
    """How many labels would make the test kappa interval ``target`` wide (1/sqrt(n))."""
    out: dict[str, Any] = {"target_width": target, "current_width": width,
                           "n_test": n_test, "labels": n_total, "method": WIDTH_METHOD}
    if width is None or not math.isfinite(width) or target <= 0:
        out.update(test_items_needed=None, labels_needed=None, more_labels=None)
        return out
    needed_test = max(n_test, math.ceil(n_test * (width / target) ** 2))
    labels_needed = max(n_total, math.ceil(needed_test / test_share))
    out.update(test_items_needed=needed_test, labels_needed=labels_needed,
               more_labels=labels_needed - n_total)
    return out


# The learned evaluator ---------------------------------------------------------------------

def _learned_bases(items: list[Labelled], train: list[int], schema: AnnotationSchema,
                   current: dict[str, Any], passing: str) -> tuple[list[Base], float | None]:
    from ls_llmtrace.judging.judges.learned import (
        LearnedJudge,
        LearnedParams,
        TextModel,
        TrainedModel,
        example_from_task,
    )

    now = LearnedParams.from_dict(current) if current else LearnedParams()
    examples = [example_from_task(items[i].data) for i in train]
    labels = [items[i].label for i in train]
    grid = [LearnedParams(features=f, c=c, ngram_max=g)
            for f in LEARNED_FEATURES for c in LEARNED_C for g in LEARNED_NGRAMS]
    base_now = LearnedParams(now.features, now.c, now.ngram_max)
    if base_now not in grid:
        grid.insert(0, base_now)

    def fitted(params: LearnedParams) -> Callable[[list[Labelled]], list[Verdict | None]]:
        model: list[TextModel] = []

        def verdicts(subset: list[Labelled]) -> list[Verdict | None]:
            if not model:
                model.append(TextModel(params).fit(examples, labels))
            judge = LearnedJudge(TrainedModel(model[0], 0, len(labels), ""), passing)
            return list(judge.judge_many([item.data for item in subset]))
        return verdicts

    bases = [Base(f"learned:{i}", p.as_dict(), p.describe(), p == base_now, fitted(p))
             for i, p in enumerate(grid)]
    return bases, now.threshold


# The LLM judge -----------------------------------------------------------------------------

def _case(item: Labelled, schema: AnnotationSchema) -> dict[str, Any]:
    from ls_llmtrace.judging.judges.fewshot import trace_case

    return trace_case(item.trace_id, item.trace, item.record, schema)


def _draw(items: list[Labelled], pool: list[int], k: int, rng: random.Random) -> list[int]:
    """``k`` train items with both verdicts among them (when both exist), seeded."""
    failing = [i for i in pool if items[i].fail]
    passing = [i for i in pool if not items[i].fail]
    chosen = []
    if failing and passing and k >= 2:
        chosen = [rng.choice(failing), rng.choice(passing)]
    rest = [i for i in pool if i not in chosen]
    chosen += rng.sample(rest, min(len(rest), max(0, k - len(chosen))))
    rng.shuffle(chosen)
    return chosen


def _cut(text: str | None, limit: int = 400) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + " [...]"


def _llm_bases(items: list[Labelled], split: Split, schema: AnnotationSchema,
               current: dict[str, Any] | None, draws: int, seed: int, concurrency: int,
               progress: Callable[[int], None] | None) -> tuple[list[Base], float | None]:
    from ls_llmtrace.judging.judges import Metrics
    from ls_llmtrace.judging.judges.cache import VerdictCache
    from ls_llmtrace.judging.judges.fewshot import few_shot_cases
    from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig, LLMJudge
    from ls_llmtrace.labelstudio.results import parse_config
    from ls_llmtrace.schema.labelconfig import build_label_config

    spec = parse_config(build_label_config(schema))
    client = ChatClient(LLMConfig.from_settings(), Metrics())
    cache_path = settings.judge_cache_path()
    cache = VerdictCache(cache_path) if cache_path else None
    held_out = {items[i].trace_id for i in split.dev + split.test}
    k = max(2, settings.judge_few_shot())

    def prompt(name: str, params: dict[str, Any], describe: str, is_current: bool) -> Base:
        shots = params.get("few_shot_cases") or []
        judge = LLMJudge(spec, schema, shots, client, cache, len(shots),
                         params.get("rubric_examples") or None)

        def verdicts(subset: list[Labelled]) -> list[Verdict | None]:
            def one(item: Labelled) -> Verdict | None:
                try:
                    return judge.raw_verdict(item.data)
                except JudgeReplyError:
                    return None
                finally:
                    if progress is not None:
                        progress(1)
            if concurrency <= 1:
                return [one(i) for i in subset]
            with ThreadPoolExecutor(max_workers=concurrency,
                                    thread_name_prefix="calibrate") as pool:
                return list(pool.map(one, subset))
        return Base(name, params, describe, is_current, verdicts, judge.prompt_version)

    bases = []
    if current is not None:
        now = {k_: v for k_, v in current.items() if k_ != "threshold"}
        bases.append(prompt("current", now, "the active calibration's prompt", True))
        threshold = current.get("threshold")
    else:
        shots = [c for c in few_shot_cases(schema) if c.get("trace_id") not in held_out]
        shots = shots[:settings.judge_few_shot()]
        bases.append(prompt("current", {"few_shot_cases": shots, "rubric_examples": {}},
                            f"the current prompt ({len(shots)} few-shot cases from the "
                            "store's failures, held out of dev and test)", True))
        threshold = None
    bases.append(prompt("no-few-shot", {"few_shot_cases": [], "rubric_examples": {}},
                        "no few-shot cases", False))
    for d in range(draws):
        rng = random.Random(f"{seed}:{d}")
        shots_i = _draw(items, split.train, k, rng)
        shots = [_case(items[i], schema) for i in shots_i]
        bases.append(prompt(f"draw-{d}", {"few_shot_cases": shots, "rubric_examples": {}},
                            f"{len(shots)} few-shot cases drawn from train (draw {d})",
                            False))
        left = [i for i in split.train if i not in shots_i]
        rubric: dict[str, list[str]] = {}
        for want in (True, False):
            pool = [i for i in left if items[i].fail is want]
            if pool:
                pick = items[rng.choice(pool)]
                rubric.setdefault(pick.label, []).append(_cut(pick.trace.output))
        bases.append(prompt(f"draw-{d}+rubric",
                            {"few_shot_cases": shots, "rubric_examples": rubric},
                            f"{len(shots)} few-shot cases (draw {d}) and one reviewer-"
                            "labelled answer per verdict in the rubric", False))
    return bases, threshold


# The run ---------------------------------------------------------------------------------

@dataclass
class CalibrationResult:
    """What ``calibrate`` found (``as_json`` is the file it writes)."""

    body: dict[str, Any]
    params: dict[str, Any]
    before: BinaryAgreement
    after: BinaryAgreement
    calibration_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.body, "calibration_id": self.calibration_id,
                "saved": self.calibration_id is not None}


def calibrate(store: Store, schema: AnnotationSchema, kind: JudgeKind, *,
              queue: str | None = None, project_id: int | None = None,
              min_labels: int | None = None,
              fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0,
              resamples: int = 2000, target_width: float = 0.1, llm_draws: int = 2,
              save: bool = True, concurrency: int = 1,
              progress: Callable[[int], None] | None = None,
              now: datetime | None = None) -> CalibrationResult:
    """Split, choose on dev, measure before/after on test, record the choice."""
    from ls_llmtrace.judging.judges.base import pass_fail_labels

    minimum = settings.calibrate_min_labels() if min_labels is None else min_labels
    where = f"queue {queue!r}" if queue else f"schema {schema.version_id}"
    label = schema.label_field
    if label is None or not label.failing:
        raise ConfigError(f"schema {schema.version_id} has no verdict with failing values: "
                          "calibration needs one")
    items = labelled_items(store, schema, project_id)
    check_enough(items, minimum, f"{where} at {schema.version_id}")
    split = split_items([i.fail for i in items], fractions, seed)
    passing, failing = pass_fail_labels(label.values)
    active = store.active_calibration(kind, schema.id, schema.version)
    current = active.params if active else None
    if kind == "learned":
        bases, current_threshold = _learned_bases(items, split.train, schema, current or {},
                                                  passing)
    elif kind == "llm":
        bases, current_threshold = _llm_bases(items, split, schema, current, llm_draws,
                                              seed, concurrency, progress)
    else:
        raise ConfigError(f"cannot calibrate judge {kind!r}: use learned or llm")

    dev = [items[i] for i in split.dev]
    test = [items[i] for i in split.test]
    dev_human = [i.fail for i in dev]
    scored: list[Scored] = []
    rows = []
    for base in bases:
        verdicts = base.verdicts(dev)
        best_here: Scored | None = None
        for threshold in THRESHOLDS:
            kappa = _kappa(dev_human, decisions(verdicts, threshold, dev, schema, passing,
                                                failing))
            one = Scored(base.name, threshold, kappa,
                         base.current and threshold == current_threshold)
            scored.append(one)
            if best_here is None or kappa > best_here.dev_kappa + 1e-12:
                best_here = one
        now_kappa = next((s.dev_kappa for s in scored if s.current and s.base == base.name),
                         None)
        rows.append({"name": base.name, "describe": base.describe, "params": _short(
            base.params), "dev_kappa_own_label": next(
                s.dev_kappa for s in scored if s.base == base.name and s.threshold is None),
            "best_threshold": best_here.threshold if best_here else None,
            "dev_kappa_best": best_here.dev_kappa if best_here else None,
            **({"dev_kappa_current": now_kappa} if now_kappa is not None else {})})
    if not any(s.current for s in scored):  # a current threshold off the grid
        raise ConfigError(f"the active calibration's threshold {current_threshold} is not "
                          "one calibrate tries: recalibrate with a fresh store row")
    chosen = choose(scored)
    before_scored = next(s for s in scored if s.current)
    by_name = {b.name: b for b in bases}

    measured: dict[str, list[Verdict | None]] = {}

    def test_decisions(s: Scored) -> list[bool]:
        if s.base not in measured:
            measured[s.base] = by_name[s.base].verdicts(test)
        return decisions(measured[s.base], s.threshold, test, schema, passing, failing)

    test_human = [i.fail for i in test]
    before = binary_agreement(test_human, test_decisions(before_scored), seed=seed,
                              n_resamples=resamples)
    after = binary_agreement(test_human, test_decisions(chosen), seed=seed,
                             n_resamples=resamples)
    params = {**by_name[chosen.base].params, "threshold": chosen.threshold}
    before_params = {**by_name[before_scored.base].params, "threshold": current_threshold}
    changed = chosen != before_scored
    width = (after.kappa.high - after.kappa.low
             if after.kappa.high is not None and after.kappa.low is not None else None)
    created = now or datetime.now(UTC)
    body: dict[str, Any] = {
        "format": FORMAT, "queue": queue, "project_id": project_id,
        "schema": schema.version_id, "judge": kind, "created_at": created.isoformat(),
        "seed": seed, "bootstrap": {"resamples": resamples, "level": after.level},
        "labels": {"total": len(items), "failing": sum(1 for i in items if i.fail),
                   "passing": sum(1 for i in items if not i.fail), "min_labels": minimum},
        "split": {"fractions": list(fractions), **split.as_dict(items),
                  "stratified_by": "failing vs passing", "test_trace_ids": [
                      i.trace_id for i in test]},
        "objective": "Cohen's kappa on dev (failure positive); ties keep the current setting",
        "before": _side(by_name[before_scored.base], before_scored, before_params, before,
                        active),
        "after": _side(by_name[chosen.base], chosen, params, after, None),
        "changed": changed, "tried": len(scored), "candidates": rows,
        "more_labels": labels_for_width(len(test), len(items), fractions[2], width,
                                        target_width),
    }
    result = CalibrationResult(body, params, before, after)
    if kind == "llm":
        result.body["after"]["model_version"] = _llm_model_version(schema, params)
    if save:
        result.calibration_id = store.record_calibration(Calibration(
            judge_kind=kind, schema_id=schema.id, schema_version=schema.version,
            created_at=created, params=params, result=result.as_json(), queue=queue))
        result.body["calibration_id"] = result.calibration_id
    return result


def _short(params: dict[str, Any]) -> dict[str, Any]:
    """Params as the result file lists them (few-shot cases by trace id)."""
    out = dict(params)
    if "few_shot_cases" in out:
        out["few_shot_cases"] = [c.get("trace_id") for c in out["few_shot_cases"]]
    return out


def _side(base: Base, scored: Scored, params: dict[str, Any], test: BinaryAgreement,
          active: Calibration | None) -> dict[str, Any]:
    figures = test.as_dict()
    return {"setting": base.name, "describe": base.describe, "params": _short(params),
            "threshold": scored.threshold, "dev_kappa": scored.dev_kappa,
            "test": figures, "kappa": figures["kappa"],  # the test kappa, for the report
            **({"calibration_id": active.calibration_id} if active else {})}


def _llm_model_version(schema: AnnotationSchema, params: dict[str, Any]) -> str | None:
    """The ``model_version`` the backend will give the calibrated LLM judge."""
    from ls_llmtrace.judging.backend import model_version
    from ls_llmtrace.judging.judges import Metrics
    from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig, LLMJudge
    from ls_llmtrace.labelstudio.results import parse_config
    from ls_llmtrace.schema.labelconfig import build_label_config

    config = build_label_config(schema)
    shots = params.get("few_shot_cases") or []
    judge = LLMJudge(parse_config(config), schema, shots,
                     ChatClient(LLMConfig.from_settings(), Metrics()), None, len(shots),
                     params.get("rubric_examples") or None, params.get("threshold"))
    return model_version(judge, config)


def default_result_path(result: CalibrationResult) -> Path:
    body = result.body
    schema = str(body["schema"]).replace("@", ".")
    tag = result.calibration_id if result.calibration_id is not None else "dry-run"
    return settings.home() / "calibrations" / f"{schema}.{body['judge']}.{tag}.json"


# Choosing among recorded judge configurations (pairwise) ------------------------------------

def choose_recorded_pairwise(human: Sequence[str],
                             runs: dict[str, tuple[Sequence[str | None], Sequence[str | None]]],
                             *, train_share: float = 0.5, seed: int = 0,
                             resamples: int = 2000, missing: str | None = None
                             ) -> dict[str, Any]:
    """Calibration by selection: given several judge configurations' recorded verdicts on
    the same pairs (both presentation orders, :func:`pairwise_agreement`'s form), choose
    the one with the best order-averaged accuracy on a stratified train split (ties: more
    pairs right in both orders, then the name) and report it on the held-out split, which
    the choice never saw, with intervals. Also given, for scale: the best configuration
    *on the held-out split* (what a choice that peeked would report) and the chosen one's
    rank there."""
    from sklearn.model_selection import train_test_split

    from ls_llmtrace.evals.agreement import pairwise_agreement

    if not runs:
        raise ConfigError("no recorded judge configurations to choose from")
    index = np.arange(len(human))
    train, test = train_test_split(index, train_size=train_share, stratify=list(human),
                                   random_state=seed)
    train, test = sorted(int(i) for i in train), sorted(int(i) for i in test)

    def on(part: list[int], name: str, boot: int) -> Any:
        first, second = runs[name]
        return pairwise_agreement([human[i] for i in part], [first[i] for i in part],
                                  [second[i] for i in part], missing=missing, seed=seed,
                                  n_resamples=boot)

    def rank_key(found: Any, name: str) -> tuple[float, int, str]:
        return (-(found.accuracy_average.value or 0.0), -found.correct_both, name)

    on_train = {name: on(train, name, 0) for name in runs}
    chosen = min(runs, key=lambda n: rank_key(on_train[n], n))
    on_test = {name: on(test, name, 0) for name in runs}
    test_order = sorted(runs, key=lambda n: rank_key(on_test[n], n))
    held_out = on(test, chosen, resamples)
    peeked = on(test, test_order[0], resamples)
    return {
        "split": {"train": len(train), "test": len(test), "seed": seed,
                  "stratified_by": "the human preference"},
        "objective": "order-averaged accuracy on train (ties: right in both orders)",
        "configurations": len(runs), "chosen": chosen,
        "train": on_train[chosen].as_dict(), "test": held_out.as_dict(),
        "test_rank_of_chosen": test_order.index(chosen) + 1,
        "best_on_test": {"name": test_order[0], "test": peeked.as_dict()},
        "train_index": train, "test_index": test,
    }
