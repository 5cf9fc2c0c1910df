"""The judge gate (``eval judge``): a judge change is tested the way a prompt change is.

A judge (rules, the learned evaluator, or the LLM judge) is re-run on every case of a
golden set, shown the case's input and output exactly as a Label Studio task shows them
(:func:`case_task`), and its pass/fail is compared with the reviewers' verdict behind the
case (``schema.is_failing`` of the verdict; the case kind when the schema does not know
the verdict). Failure is the positive class.

Agreement: Cohen's kappa (scikit-learn), with a percentile bootstrap interval (``N``
resamples of the cases with replacement, numpy, seeded: the same seed gives the same
interval), plus accuracy, TPR and TNR and n. A case the judge gives no valid verdict for
(None, or an LLM reply the schema rejects) counts as a disagreement, so a judge cannot
raise its kappa by abstaining; an endpoint that cannot be reached stops the run instead.

The judge's identity: a name that stays across versions (``llmtrace-rules``,
``llmtrace-learned``, ``llmtrace-llm``, or ``--name``) and a version that changes with
whatever changes its verdicts: for the LLM judge the model and the hash of the prompt
version, model, temperature, system prompt (which holds the rubric) and few-shot
examples; for the learned evaluator its model version and the fingerprint of the labels
it was trained on. Held out, never leaked: the learned evaluator is refitted without the
set's traces and the LLM judge's few-shot examples leave them out.

The rule. Each evaluation is recorded (``--no-record``: a dry run). The reference is the
newest *passing* evaluation of the same judge name under another version, on the same set
id, else on the same schema version. The gate fails when

    kappa < reference kappa - tolerance

(point estimates; the first evaluation of a judge passes and becomes the reference). Why
the point estimates and not the interval's upper bound: both versions judge the same
cases, so most of the sampling noise that makes each interval wide is shared and cancels
in the difference; "upper bound below the previous kappa" would let any drop through on a
small set. The tolerance is the allowance for what noise is left; the intervals are
reported so a reader sees how much the set can tell apart. A failed version is recorded
but never becomes the reference, so a series of small drops cannot ratchet the bar down.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.metrics import cohen_kappa_score

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, JudgeReplyError
from ls_llmtrace.evals.cases import (
    GoldenCase,
    GoldenManifest,
    content_sha256,
    read_cases,
    read_manifest,
    set_id,
)
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.judging.judges import Judge, Metrics, RuleJudge
from ls_llmtrace.models import Message, Trace, TraceMetadata
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store
from ls_llmtrace.store.judge_evals import JudgeEvaluation

JudgeKind = Literal["rules", "learned", "llm"]
_CHUNK = 256  # bootstrap resamples per block (bounds the memory of a large set)


# Statistics -----------------------------------------------------------------------------

def binary_kappa(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Cohen's kappa of two boolean raters along the last axis (NaN where undefined: both
    raters gave one and the same class). Vectorized, for the bootstrap (about 25 times
    faster than a ``cohen_kappa_score`` call per resample: bench/bench_judgegate.py); equal
    to scikit-learn's on each row (tested)."""
    human = human.astype(float)
    judge = judge.astype(float)
    observed = (human == judge).mean(axis=-1)
    p_human, p_judge = human.mean(axis=-1), judge.mean(axis=-1)
    expected = p_human * p_judge + (1 - p_human) * (1 - p_judge)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    result: np.ndarray = np.where(np.isclose(expected, 1.0), np.nan, kappa)
    return result


def bootstrap_kappas(human: Sequence[bool] | np.ndarray, judge: Sequence[bool] | np.ndarray,
                     resamples: int, seed: int) -> np.ndarray:
    """Kappa on ``resamples`` resamples of the cases (with replacement), seeded."""
    h, j = np.asarray(human, dtype=bool), np.asarray(judge, dtype=bool)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, _CHUNK):
        index = rng.integers(0, len(h), size=(min(_CHUNK, resamples - start), len(h)))
        out.append(binary_kappa(h[index], j[index]))
    return np.concatenate(out) if out else np.empty(0)


@dataclass(frozen=True)
class Agreement:
    """A judge's agreement with the reviewers (failure is the positive class)."""

    n: int
    kappa: float
    ci_low: float
    ci_high: float
    level: float
    accuracy: float
    tpr: float | None  # share of the reviewers' failures the judge fails
    tnr: float | None  # share of the reviewers' passes the judge passes
    tp: int
    fn: int
    fp: int
    tn: int


def agreement(human: Sequence[bool], judge: Sequence[bool], resamples: int = 1000,
              seed: int = 0, level: float = 0.95) -> Agreement:
    """Kappa (scikit-learn) with a percentile bootstrap interval; the human side must hold
    both classes (kappa is undefined otherwise)."""
    if len(human) != len(judge):
        raise ValueError("human and judge verdicts differ in length")
    if len(set(human)) < 2:
        raise ConfigError("the set needs both failures and passing controls to measure "
                          "agreement: rebuild it with controls")
    h, j = np.asarray(human, dtype=bool), np.asarray(judge, dtype=bool)
    kappa = float(cohen_kappa_score(h, j, labels=[False, True]))
    if resamples > 0:
        kappas = bootstrap_kappas(h, j, resamples, seed)
        tail = (1 - level) / 2 * 100
        low, high = (float(v) for v in np.nanpercentile(kappas, [tail, 100 - tail]))
    else:
        low = high = kappa
    tp = int(np.sum(h & j))
    fn = int(np.sum(h & ~j))
    fp = int(np.sum(~h & j))
    tn = int(np.sum(~h & ~j))
    return Agreement(
        n=len(h), kappa=kappa, ci_low=low, ci_high=high, level=level,
        accuracy=(tp + tn) / len(h), tpr=tp / (tp + fn) if tp + fn else None,
        tnr=tn / (tn + fp) if tn + fp else None, tp=tp, fn=fn, fp=fp, tn=tn)


# The judge under test -------------------------------------------------------------------

@dataclass
class GateJudge:
    """A judge with the identity the gate records: a name that stays across versions and
    a version naming what its verdicts depend on."""

    name: str
    version: str
    judge: Judge
    details: dict[str, Any] = field(default_factory=dict)


def _labels(schema: AnnotationSchema) -> tuple[str, str]:
    label = schema.label_field
    if label is None or not label.failing:
        raise ConfigError(f"schema {schema.version_id} has no verdict with failing values: "
                          "the judge gate needs one")
    failing = label.failing[0]
    passing = next((v for v in label.values if v not in label.failing), label.values[0])
    return passing, failing


def build_judge(kind: JudgeKind, schema: AnnotationSchema, store: Store,
                cases: list[GoldenCase], name: str | None = None) -> GateJudge:
    """The judge of ``kind`` as the backend would build it, held out from the set."""
    passing, failing = _labels(schema)
    held_out = {c.trace_id for c in cases}
    if kind == "rules":
        rules = RuleJudge(passing, failing)
        return GateJudge(name or "llmtrace-rules", rules.version, rules)
    if kind == "learned":
        return _learned(schema, store, held_out, passing, name)
    if kind == "llm":
        return _llm(schema, held_out, name)
    raise ConfigError(f"unknown judge {kind!r}: use rules, learned or llm")


def _learned(schema: AnnotationSchema, store: Store, held_out: set[str], passing: str,
             name: str | None) -> GateJudge:
    from ls_llmtrace.judging.judges.learned import (
        LearnedJudge,
        LearnedRegistry,
        TextModel,
        TrainedModel,
        training_set,
    )

    registry = LearnedRegistry(settings.home() / "learned", settings.learned_min_labels())
    deployed = registry.train(store, schema.id, schema.version)
    if deployed is None:
        raise ConfigError(f"the learned evaluator of {schema.version_id} has fewer than "
                          f"{registry.min_labels} reviewer labels (or one verdict only): "
                          "annotate and sync first")
    examples, labels, trace_ids = training_set(store, schema.id, schema.version)
    keep = [i for i, t in enumerate(trace_ids) if t not in held_out]
    train_labels = [labels[i] for i in keep]
    if len(train_labels) < registry.min_labels or len(set(train_labels)) < 2:
        raise ConfigError(f"without the set's traces the learned evaluator keeps "
                          f"{len(train_labels)} labels: too few to train a held-out model")
    model = TextModel().fit([examples[i] for i in keep], train_labels)
    trained = TrainedModel(model, deployed.version, len(train_labels), deployed.fingerprint)
    version = f"{deployed.version}.{deployed.fingerprint[:8]}"
    return GateJudge(name or "llmtrace-learned", version, LearnedJudge(trained, passing),
                     {"trained_on": len(train_labels),
                      "held_out": len(trace_ids) - len(keep)})


def _llm(schema: AnnotationSchema, held_out: set[str], name: str | None) -> GateJudge:
    from ls_llmtrace.judging.judges.cache import VerdictCache
    from ls_llmtrace.judging.judges.fewshot import few_shot_cases
    from ls_llmtrace.judging.judges.llm import PROMPT_VERSION, ChatClient, LLMConfig, LLMJudge
    from ls_llmtrace.labelstudio.results import parse_config
    from ls_llmtrace.schema.labelconfig import build_label_config

    spec = parse_config(build_label_config(schema))
    examples = [c for c in few_shot_cases(schema) if c.get("trace_id") not in held_out]
    config = LLMConfig.from_settings()
    cache_path = settings.judge_cache_path()
    judge = LLMJudge(spec, schema, examples, ChatClient(config, Metrics()),
                     VerdictCache(cache_path) if cache_path else None, settings.judge_few_shot())
    return GateJudge(name or "llmtrace-llm", f"{config.model}:{judge.version}", judge,
                     {"model": config.model, "prompt_version": PROMPT_VERSION,
                      "rubric": schema.version_id, "few_shot": len(judge.examples) // 2})


# Running it -----------------------------------------------------------------------------

def case_task(case: GoldenCase, schema: AnnotationSchema,
              options: ReviewOptions | None = None) -> dict[str, Any]:
    """The task data the judge sees for a case: its input and output as a trace,
    converted exactly as on import (placeholders, redaction, limits)."""
    given = case.input
    trace = Trace(
        trace_id=case.trace_id, system_prompt=given.system_prompt, messages=given.messages,
        documents=given.documents, output=case.output,
        metadata=TraceMetadata(model=case.model, model_version=case.model_version,
                               prompt_name=case.prompt_name, prompt_version=case.prompt_version,
                               product_area=case.product_area, user_segment=case.user_segment))
    data: dict[str, Any] = trace_to_task(trace, schema, options)["data"]
    if given.tool_calls and not trace.tool_calls():  # calls kept beside the messages
        holder = Trace(trace_id=case.trace_id,
                       messages=[Message(role="assistant", tool_calls=given.tool_calls)])
        data["tool_calls"] = trace_to_task(holder, schema, options)["data"]["tool_calls"]
    return data


def human_fails(case: GoldenCase, schema: AnnotationSchema) -> bool:
    """The reviewers' verdict as pass/fail: the schema's failing values, else the kind."""
    label = schema.label_field
    if label is not None and case.verdict in label.values:
        return schema.is_failing(case.verdict)
    return case.kind == "failure"


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    human_fail: bool
    judge_fail: bool | None  # None: no valid verdict (counted as a disagreement)
    label: str | None
    categories: tuple[str, ...]
    human_categories: tuple[str, ...]
    problem: str | None = None

    @property
    def scored_fail(self) -> bool:
        return (not self.human_fail) if self.judge_fail is None else self.judge_fail


def judge_cases(gate_judge: GateJudge, cases: list[GoldenCase], schema: AnnotationSchema,
                concurrency: int = 1, progress: Callable[[int], None] | None = None
                ) -> list[CaseResult]:
    """Ask the judge about every case (``concurrency`` at once), in the set's order."""
    options = ReviewOptions.from_settings()

    def one(case: GoldenCase) -> CaseResult:
        human = human_fails(case, schema)
        try:
            verdict = gate_judge.judge.judge(case_task(case, schema, options))
        except JudgeReplyError as exc:
            result = CaseResult(case.case_id, human, None, None, (), tuple(case.categories),
                                str(exc))
        else:
            if verdict is None:
                result = CaseResult(case.case_id, human, None, None, (),
                                    tuple(case.categories), "no verdict")
            else:
                result = CaseResult(case.case_id, human, schema.is_failing(verdict.label),
                                    verdict.label, verdict.categories, tuple(case.categories))
        if progress is not None:
            progress(1)
        return result

    if concurrency <= 1:
        return [one(c) for c in cases]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge-gate") as pool:
        return list(pool.map(one, cases))


def per_category(results: list[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per failure category of the reviewers: how many the judge failed, and how many it
    gave the same category (when the judge names categories at all)."""
    names = sorted({c for r in results for c in r.human_categories})
    names_categories = any(r.categories for r in results)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        with_it = [r for r in results if name in r.human_categories]
        row: dict[str, Any] = {"n": len(with_it),
                               "failed": sum(1 for r in with_it if r.judge_fail)}
        if names_categories:
            found = sum(1 for r in with_it if name in r.categories)
            named = sum(1 for r in results if name in r.categories)
            row.update(named=found, recall=found / len(with_it),
                       precision=found / named if named else None)
        out[name] = row
    return out


# The gate -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedSet:
    set_id: str
    schema: AnnotationSchema
    cases: list[GoldenCase]
    manifest: GoldenManifest | None


def load_set(path: Path, schema: AnnotationSchema | None) -> LoadedSet:
    """A golden set and its schema: the one given, else the manifest's version from the
    schema directory. The manifest's content hash must match the cases."""
    from ls_llmtrace.judging.backend import find_schema

    cases = read_cases(path)
    if not cases:
        raise ConfigError(f"the golden set {path} has no cases")
    manifest = read_manifest(path)
    if manifest is not None:
        if manifest.content_sha256 != content_sha256(cases):
            raise ConfigError(f"the cases of {path} do not match its manifest's content hash "
                              "(edited after the build?): rebuild the set")
        version_id = f"{manifest.schema_id}@v{manifest.schema_version}"
        if schema is None:
            schema = find_schema(version_id)
            if schema is None:
                raise ConfigError(f"schema {version_id} of the set is not in "
                                  f"{settings.schema_dir()}: pass --schema")
        elif schema.version_id != version_id:
            raise ConfigError(f"the set was built under {version_id}, not "
                              f"{schema.version_id}")
        return LoadedSet(manifest.set_id, schema, cases, manifest)
    if schema is None:
        raise ConfigError(f"the golden set {path} has no manifest: pass --schema")
    return LoadedSet(set_id(schema.id, schema.version, cases), schema, cases, None)


@dataclass(frozen=True)
class GateResult:
    evaluation: JudgeEvaluation
    agreement: Agreement
    reference: JudgeEvaluation | None
    tolerance: float
    categories: dict[str, dict[str, Any]]
    abstained: int
    recorded: bool

    @property
    def passed(self) -> bool:
        return self.evaluation.passed

    def verdict_line(self) -> str:
        """One line: PASS or FAIL, naming both versions, their kappas and intervals."""
        e, ref = self.evaluation, self.reference
        this = f"{e.judge_name} {e.judge_version} kappa {_interval(e)}"
        if ref is None:
            return (f"PASS: {this}: no accepted earlier version of {e.judge_name} to "
                    "compare with; this one is the reference")
        that = f"{ref.judge_version} kappa {_interval(ref)}"
        if self.passed:
            return (f"PASS: {this} vs {that}: within {self.tolerance:g} of the reference "
                    "or better")
        return (f"FAIL: {this} dropped more than {self.tolerance:g} below {that} "
                f"(by {ref.kappa - e.kappa:.3f})")

    def as_json(self) -> dict[str, Any]:
        e, a, ref = self.evaluation, self.agreement, self.reference
        return {
            "passed": self.passed, "line": self.verdict_line(),
            "judge": e.judge_name, "version": e.judge_version, "set_id": e.set_id,
            "schema": f"{e.schema_id}@v{e.schema_version}", "n": a.n, "kappa": a.kappa,
            "ci": [a.ci_low, a.ci_high], "ci_level": a.level, "accuracy": a.accuracy,
            "tpr": a.tpr, "tnr": a.tnr,
            "confusion": {"tp": a.tp, "fn": a.fn, "fp": a.fp, "tn": a.tn},
            "abstained": self.abstained, "categories": self.categories,
            "tolerance": self.tolerance, "recorded": self.recorded, "eval_id": e.eval_id,
            "details": e.details,
            "reference": None if ref is None else {
                "eval_id": ref.eval_id, "version": ref.judge_version, "set_id": ref.set_id,
                "kappa": ref.kappa, "ci": [ref.ci_low, ref.ci_high],
                "evaluated_at": ref.evaluated_at.isoformat()},
        }


def _interval(e: JudgeEvaluation) -> str:
    return f"{e.kappa:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"


def drops(kappa: float, reference: JudgeEvaluation | None, tolerance: float) -> bool:
    """The gate's rule: a drop below the reference's kappa by more than the tolerance."""
    return reference is not None and kappa < reference.kappa - tolerance - 1e-12


def run_gate(store: Store, loaded: LoadedSet, gate_judge: GateJudge, *,
             tolerance: float = 0.05, record: bool = True, resamples: int = 1000,
             seed: int = 0, concurrency: int = 1,
             progress: Callable[[int], None] | None = None) -> GateResult:
    """Judge the set, measure agreement, compare with the reference, record."""
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ConfigError(f"tolerance {tolerance} must be a number >= 0")
    schema = loaded.schema
    results = judge_cases(gate_judge, loaded.cases, schema, concurrency, progress)
    measured = agreement([r.human_fail for r in results], [r.scored_fail for r in results],
                         resamples, seed)
    reference = store.reference_evaluation(gate_judge.name, gate_judge.version,
                                           loaded.set_id, schema.id, schema.version)
    abstained = sum(1 for r in results if r.judge_fail is None)
    categories = per_category(results)
    evaluation = JudgeEvaluation(
        judge_name=gate_judge.name, judge_version=gate_judge.version, set_id=loaded.set_id,
        schema_id=schema.id, schema_version=schema.version, kappa=measured.kappa,
        ci_low=measured.ci_low, ci_high=measured.ci_high, accuracy=measured.accuracy,
        tpr=measured.tpr, tnr=measured.tnr, n=measured.n,
        passed=not drops(measured.kappa, reference, tolerance),
        evaluated_at=datetime.now(UTC),
        reference_id=reference.eval_id if reference else None,
        details={"judge": gate_judge.details, "tolerance": tolerance, "bootstrap": resamples,
                 "seed": seed, "abstained": abstained,
                 "confusion": {"tp": measured.tp, "fn": measured.fn, "fp": measured.fp,
                               "tn": measured.tn},
                 "categories": categories})
    if record:
        eval_id = store.record_judge_evaluation(evaluation)
        evaluation = dataclasses.replace(evaluation, eval_id=eval_id)
    return GateResult(evaluation, measured, reference, tolerance, categories, abstained, record)
