"""The regression gate: score candidates on a golden set and compare with a baseline run.

Each case is scored by the checks it calls for (``evals/checks.py``): its own ``checks``
or the gate config's default reference checks, plus the checks of each of its failure
categories, plus the configured judge with the schema's rubric (``rules`` offline,
``llm`` against an endpoint; a failing verdict fails the check). A case passes when
every check that applies passes; a case with no candidate (not in the file, or its
generation failed) is an ``error`` and counts as failing; a case no check applies to is
``skipped`` and left out of the pass rate.

**Regression** (exit code 1): against the baseline, any *newly failing* case (it passed
in the baseline and fails now), or an overall pass-rate drop larger than the tolerance
(a fraction, default 0; it matters when the set changed: new cases, dropped cases).
Without a baseline, ``min_pass_rate`` (when set) is the bar. The pass-rate change on the
cases both runs share comes with a 95% paired-bootstrap interval (2,000 resamples over
cases, seed 0: the same runs give the same interval).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import Field, ValidationError, field_validator

from ls_llmtrace.errors import ConfigError, LLMTraceError
from ls_llmtrace.evals.candidates import Candidate, GenerationConfig, generate, read_candidates
from ls_llmtrace.evals.cases import GoldenCase, content_sha256, read_cases, read_manifest
from ls_llmtrace.evals.checks import (
    CATEGORY_CHECKS,
    CHECKS,
    DEFAULT_CHECKS,
    CheckParams,
    CheckResult,
    run_check,
)
from ls_llmtrace.judging.judges.base import Judge
from ls_llmtrace.models import Document, Message, StrictModel, Trace, problems
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store
from ls_llmtrace.yamlfiles import parse_yaml_mapping, read_text

JudgeKind = Literal["none", "rules", "llm"]
Status = Literal["pass", "fail", "error", "skipped"]
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONTROL = "(control)"
UNCATEGORIZED = "(uncategorized)"


# The gate config ------------------------------------------------------------------------

class GateConfig(StrictModel):
    """``gate.yaml``: which checks run, how strict, which judge."""

    checks: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECKS), description=(
        "Reference checks for a case that names none of its own."))
    similarity_threshold: float = Field(0.8, ge=0.0, le=1.0)
    categories: dict[str, list[str]] = Field(default_factory=dict, description=(
        "Failure category -> its checks (replaces the built-in ones of that category)."))
    judge: JudgeKind = "none"
    schema_path: Path | None = Field(None, alias="schema", description=(
        "The schema whose rubric and failing verdicts the judge uses (default: the set "
        "manifest's version, found in LS_LLMTRACE_SCHEMA_DIR)."))
    tolerance: float = Field(0.0, ge=0.0, le=1.0, description=(
        "Allowed drop of the overall pass rate against the baseline."))
    min_pass_rate: float | None = Field(None, ge=0.0, le=1.0, description=(
        "Without a baseline: the pass rate below which the gate fails."))

    @field_validator("checks")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CHECKS]
        if unknown:
            raise ValueError(f"unknown checks {unknown}: use {sorted(CHECKS)}")
        return value

    @field_validator("categories")
    @classmethod
    def _known_by_category(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for category, names in value.items():
            unknown = [c for c in names if c not in CHECKS]
            if unknown:
                raise ValueError(f"category {category!r}: unknown checks {unknown}: "
                                 f"use {sorted(CHECKS)}")
        return value

    def category_checks(self, category: str) -> list[str]:
        return self.categories.get(category, CATEGORY_CHECKS.get(category, []))


def load_gate_config(path: Path | None) -> GateConfig:
    if path is None:
        return GateConfig()
    raw = parse_yaml_mapping(read_text(path, ConfigError, "the gate config"), str(path),
                             ConfigError, "gate config")
    try:
        return GateConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {problems(exc)}") from None


# Results --------------------------------------------------------------------------------

class CheckOutcome(StrictModel):
    check: str
    passed: bool
    detail: str
    category: str | None = None


class CaseResult(StrictModel):
    case_id: str
    kind: str
    categories: list[str] = Field(default_factory=list)
    status: Status
    checks: list[CheckOutcome] = Field(default_factory=list)
    output: str | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def groups(self) -> list[str]:
        """The categories it counts in (controls and uncategorized failures get their own)."""
        if self.kind == "control":
            return [CONTROL]
        return self.categories or [UNCATEGORIZED]

    def failure_message(self) -> str | None:
        """One line naming the failing check and the category, e.g.
        ``check tool_result_reflected failed (category ignored_tool_result): ...``."""
        if self.status == "error":
            return f"no candidate (category {', '.join(self.groups)}): {self.error}"
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return None
        # a category's own check says most about what came back
        first = next((c for c in failed if c.category), failed[0])
        category = first.category or ", ".join(self.groups)
        more = f" (+{len(failed) - 1} more failing checks)" if len(failed) > 1 else ""
        return f"check {first.check} failed (category {category}): {first.detail}{more}"


class GroupStats(StrictModel):
    total: int
    passed: int
    pass_rate: float | None


class Comparison(StrictModel):
    baseline_run_id: str
    baseline_name: str
    common: int
    newly_failing: list[str]
    fixed: list[str]
    new_cases: list[str]
    dropped_cases: list[str]
    baseline_pass_rate: float | None
    pass_rate: float | None
    delta_common: float | None = Field(description="Pass-rate change on the shared cases.")
    ci_low: float | None
    ci_high: float | None
    ci_method: str = f"paired bootstrap over cases, 95%, {BOOTSTRAP_RESAMPLES} resamples, " \
                     f"seed {BOOTSTRAP_SEED}"


class GateRun(StrictModel):
    """One gate run: what was scored, how, and the verdict (stored as a baseline)."""

    run_id: str
    name: str
    set_id: str
    created_at: datetime
    source: dict[str, Any] = Field(default_factory=dict, description="Where candidates came from.")
    config: dict[str, Any] = Field(default_factory=dict)
    results: list[CaseResult]
    totals: dict[str, int] = Field(default_factory=dict)
    pass_rate: float | None = None
    groups: dict[str, GroupStats] = Field(default_factory=dict)
    comparison: Comparison | None = None
    regression: bool = False
    reasons: list[str] = Field(default_factory=list, description="Why the gate failed.")

    @property
    def exit_code(self) -> int:
        return 1 if self.regression else 0


# Scoring --------------------------------------------------------------------------------

JudgeCheck = Callable[[GoldenCase, str], CheckResult]


def judge_task_data(case: GoldenCase, output: str) -> dict[str, Any]:
    """The task data a judge reads, for the case's input answered by ``output``."""
    from ls_llmtrace.ingest.convert import task_data

    trace = Trace(trace_id=case.trace_id, system_prompt=case.input.system_prompt,
                  messages=[Message.model_validate(m.model_dump()) for m in case.input.messages],
                  documents=[Document.model_validate(d.model_dump())
                             for d in case.input.documents],
                  output=output)
    data = task_data(trace)
    if case.input.tool_calls and not trace.tool_calls():
        data["tool_calls"] = [{"name": c.name, "content": f"arguments: {c.arguments}\n"
                               f"result: {c.result}"} for c in case.input.tool_calls]
    return data


def judge_check(judge: Judge, schema: AnnotationSchema | None,
                pass_label: str = "pass") -> JudgeCheck:
    """A check that asks the judge; a failing verdict (by the schema, else any label but
    ``pass_label``) or a judge error fails it."""
    name = f"judge:{judge.name}"

    def check(case: GoldenCase, output: str) -> CheckResult:
        try:
            verdict = judge.judge(judge_task_data(case, output))
        except LLMTraceError as exc:
            return CheckResult(name, False, f"the judge failed: {exc}")
        if verdict is None:
            return CheckResult(name, True, "the judge had nothing to say")
        failing = (schema.is_failing(verdict.label) if schema is not None
                   else verdict.label != pass_label)
        return CheckResult(name, not failing, f"verdict {verdict.label!r}: "
                           f"{verdict.explanation}")

    return check


def planned_checks(case: GoldenCase, config: GateConfig) -> list[tuple[str, str | None]]:
    """(check name, category that asked for it) for one case."""
    names = case.checks if case.checks is not None else config.checks
    planned: list[tuple[str, str | None]] = [(n, None) for n in names]
    for category in case.categories:
        planned += [(n, category) for n in config.category_checks(category)]
    return list(dict.fromkeys(planned))


def score_case(case: GoldenCase, candidate: Candidate | None, config: GateConfig,
               judge: JudgeCheck | None = None) -> CaseResult:
    base = {"case_id": case.case_id, "kind": case.kind, "categories": case.categories}
    if candidate is None or candidate.output is None:
        error = candidate.error if candidate is not None else "no candidate output for this case"
        return CaseResult(**base, status="error", error=error)
    output = candidate.output
    params = CheckParams(config.similarity_threshold)
    results = []
    for name, category in planned_checks(case, config):
        if name not in CHECKS:  # a case naming a check this version does not have
            results.append(CheckResult(name, False, f"unknown check {name!r}: the known "
                                       f"ones are {sorted(CHECKS)}", category))
        elif (result := run_check(name, case, output, params, category)) is not None:
            results.append(result)
    if judge is not None:
        results.append(judge(case, output))
    outcomes = [CheckOutcome(check=r.check, passed=r.passed, detail=r.detail,
                             category=r.category) for r in results]
    status: Status = ("skipped" if not outcomes
                      else "pass" if all(o.passed for o in outcomes) else "fail")
    return CaseResult(**base, status=status, checks=outcomes, output=output)


def score(cases: list[GoldenCase], candidates: dict[str, Candidate], config: GateConfig,
          judge: JudgeCheck | None = None, concurrency: int = 1,
          progress: Callable[[int], None] | None = None) -> list[CaseResult]:
    """Score every case (in case order); with a judge, ``concurrency`` cases at a time."""
    def one(case: GoldenCase) -> CaseResult:
        result = score_case(case, candidates.get(case.case_id), config, judge)
        if progress is not None:
            progress(1)
        return result

    if judge is None or concurrency <= 1:
        return [one(c) for c in cases]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="gate-judge") as pool:
        return list(pool.map(one, cases))


def _rate(passed: int, total: int) -> float | None:
    return passed / total if total else None


def group_stats(results: list[CaseResult]) -> dict[str, GroupStats]:
    counts: dict[str, list[int]] = {}
    for r in results:
        if r.status == "skipped":
            continue
        for group in r.groups:
            tally = counts.setdefault(group, [0, 0])
            tally[0] += 1
            tally[1] += int(r.passed)
    return {g: GroupStats(total=t, passed=p, pass_rate=_rate(p, t))
            for g, (t, p) in sorted(counts.items())}


def totals(results: list[CaseResult]) -> dict[str, int]:
    out = {"cases": len(results), "pass": 0, "fail": 0, "error": 0, "skipped": 0}
    for r in results:
        out[r.status] += 1
    return out


def pass_rate(results: list[CaseResult]) -> float | None:
    scored = [r for r in results if r.status != "skipped"]
    return _rate(sum(r.passed for r in scored), len(scored))


def paired_bootstrap(current: np.ndarray, baseline: np.ndarray,
                     resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% percentile interval of mean(current - baseline), resampling cases."""
    diff = current.astype(float) - baseline.astype(float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def compare(results: list[CaseResult], baseline: GateRun) -> Comparison:
    now = {r.case_id: r for r in results if r.status != "skipped"}
    then = {r.case_id: r for r in baseline.results if r.status != "skipped"}
    common = sorted(now.keys() & then.keys())
    delta = low = high = None
    if common:
        a = np.array([now[c].passed for c in common])
        b = np.array([then[c].passed for c in common])
        delta = float(a.mean() - b.mean())
        low, high = paired_bootstrap(a, b)
    return Comparison(
        baseline_run_id=baseline.run_id, baseline_name=baseline.name, common=len(common),
        newly_failing=[c for c in common if then[c].passed and not now[c].passed],
        fixed=[c for c in common if not then[c].passed and now[c].passed],
        new_cases=sorted(now.keys() - then.keys()),
        dropped_cases=sorted(then.keys() - now.keys()),
        baseline_pass_rate=pass_rate(baseline.results), pass_rate=pass_rate(results),
        delta_common=delta, ci_low=low, ci_high=high)


def verdict(comparison: Comparison | None, rate: float | None,
            config: GateConfig) -> list[str]:
    """Why the gate fails (empty: it passes). See the module docstring."""
    reasons = []
    if comparison is not None:
        if comparison.newly_failing:
            reasons.append(f"{len(comparison.newly_failing)} newly failing case(s)")
        if (comparison.baseline_pass_rate is not None and rate is not None
                and comparison.baseline_pass_rate - rate > config.tolerance + 1e-12):
            reasons.append(f"pass rate dropped from {comparison.baseline_pass_rate:.1%} to "
                           f"{rate:.1%}, more than the tolerance {config.tolerance:.1%}")
    elif config.min_pass_rate is not None and (rate or 0.0) < config.min_pass_rate:
        reasons.append(f"pass rate {(rate or 0.0):.1%} below the minimum "
                       f"{config.min_pass_rate:.1%}")
    return reasons


def new_run_id(now: datetime, set_id: str, name: str) -> str:
    salt = hashlib.sha256(f"{now.isoformat()}|{set_id}|{name}".encode()).hexdigest()[:8]
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{salt}"


def build_run(name: str, set_id: str, results: list[CaseResult], config: GateConfig,
              baseline: GateRun | None, source: dict[str, Any] | None = None,
              now: datetime | None = None) -> GateRun:
    now = now or datetime.now(UTC)
    comparison = compare(results, baseline) if baseline is not None else None
    rate = pass_rate(results)
    reasons = verdict(comparison, rate, config)
    return GateRun(run_id=new_run_id(now, set_id, name), name=name, set_id=set_id,
                   created_at=now, source=source or {},
                   config=config.model_dump(mode="json", by_alias=True), results=results,
                   totals=totals(results), pass_rate=rate, groups=group_stats(results),
                   comparison=comparison, regression=bool(reasons), reasons=reasons)


# Sets and baselines ---------------------------------------------------------------------

def set_id_of(path: Path, cases: list[GoldenCase]) -> str:
    """The manifest's set id, else one from the content alone."""
    manifest = read_manifest(path)
    return manifest.set_id if manifest is not None else \
        f"unversioned-{content_sha256(cases)[:12]}"


def lineage(set_id: str) -> str:
    """``default@v1-0123abcd4567`` -> ``default@v1``: the runs a ``last`` baseline is
    looked for among."""
    return set_id.rsplit("-", 1)[0] if "-" in set_id else set_id


def run_from_json(text: str, origin: str) -> GateRun:
    try:
        return GateRun.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"{origin} is not a gate run (the --json output of `eval run`): "
                          f"{problems(exc)}") from None


def find_baseline(store: Store | None, spec: str, set_id: str) -> GateRun | None:
    """``spec``: a results file, ``last`` (the newest stored run on this set's lineage;
    None when there is none), a stored run id, or a run name (its newest run)."""
    path = Path(spec)
    if spec != "last" and path.is_file():
        return run_from_json(read_text(path, ConfigError, "the baseline file"), str(path))
    if store is None:
        raise ConfigError(f"baseline {spec!r}: not a file, and no store to look it up in")
    if spec == "last":
        body = store.latest_eval_run_body(set_prefix=lineage(set_id))
        return run_from_json(body, "the last stored run") if body is not None else None
    body = store.eval_run_body(spec) or store.latest_eval_run_body(name=spec)
    if body is None:
        raise ConfigError(f"no baseline {spec!r}: not a file, a stored run id or a run name "
                          "(see the run ids `eval run` prints; --baseline last takes the "
                          "newest)")
    return run_from_json(body, f"stored run {spec!r}")


def save_run(store: Store, run: GateRun) -> None:
    store.save_eval_run(run.run_id, run.name, run.set_id, run.created_at.isoformat(),
                        run.totals.get("pass", 0), run.totals.get("cases", 0),
                        run.model_dump_json())


def gate_schema(config: GateConfig, set_path: Path) -> AnnotationSchema | None:
    """The gate config's schema, else the set manifest's version in the schema dir."""
    from ls_llmtrace.judging.backend import find_schema
    from ls_llmtrace.schema.model import load_schema

    if config.schema_path is not None:
        return load_schema(config.schema_path)
    manifest = read_manifest(set_path)
    if manifest is None:
        return None
    return find_schema(f"{manifest.schema_id}@v{manifest.schema_version}")


def make_judge(kind: JudgeKind, schema: AnnotationSchema | None) -> JudgeCheck | None:
    """The judge check of a gate: none, the offline rule judge, or the LLM judge (the
    endpoint from LS_LLMTRACE_LLM_*, with the schema's rubric and the verdict cache)."""
    if kind == "none":
        return None
    field = schema.label_field if schema is not None else None
    values = list(field.values) if field is not None else ["pass", "fail"]
    failing = list(field.failing) if field is not None and field.failing else [values[-1]]
    passing = next((v for v in values if v not in failing), values[0])
    if kind == "rules":
        from ls_llmtrace.judging.judges.rules import RuleJudge

        return judge_check(RuleJudge(passing, failing[0]), schema, passing)
    if schema is None:
        raise ConfigError("the llm judge needs the schema's rubric: set `schema:` in the gate "
                          "config, or use a set whose manifest names a schema version found "
                          "in LS_LLMTRACE_SCHEMA_DIR")
    from ls_llmtrace import settings
    from ls_llmtrace.judging.judges.cache import VerdictCache
    from ls_llmtrace.judging.judges.llm import ChatClient, LLMConfig, LLMJudge
    from ls_llmtrace.labelstudio.results import parse_config
    from ls_llmtrace.schema.labelconfig import build_label_config

    spec = parse_config(build_label_config(schema))
    cache_path = settings.judge_cache_path()
    judge = LLMJudge(spec, schema, [], ChatClient(LLMConfig.from_settings()),
                     VerdictCache(cache_path) if cache_path is not None else None,
                     few_shot=0)
    return judge_check(judge, schema, passing)


# One run, end to end (the CLI and the pytest plugin) ---------------------------------------

class _Bar(Protocol):
    def update(self, n_steps: int) -> None: ...


ProgressFactory = Callable[[str, int], AbstractContextManager[_Bar]]


class _NoBar:
    def update(self, n_steps: int) -> None:
        pass


@contextmanager
def no_progress(label: str, total: int) -> Iterator[_Bar]:
    yield _NoBar()


def run_gate(set_path: Path, config: GateConfig, *, candidates_file: Path | None = None,
             generation: GenerationConfig | None = None, baseline: str | None = None,
             name: str | None = None, save: bool = True, store: Store | None = None,
             progress: ProgressFactory = no_progress) -> GateRun:
    """Read the set, get the candidates, score them, compare with the baseline, store the
    run (``save``). ``store`` (default: the configured one, opened when needed) holds the
    candidate cache, the baselines and the saved runs."""
    if (candidates_file is None) == (generation is None):
        raise ConfigError("give the candidates either as a file (--candidates) or as an "
                          "endpoint to generate them (--endpoint and --model)")
    cases = read_cases(set_path)
    if not cases:
        raise ConfigError(f"the golden set {set_path} has no cases")
    set_id = set_id_of(set_path, cases)
    schema = gate_schema(config, set_path) if config.judge != "none" else None
    judge = make_judge(config.judge, schema)
    own_store = store is None and (generation is not None or save or
                                   (baseline is not None and not Path(baseline).is_file()))
    if own_store:
        store = Store()
    try:
        base = find_baseline(store, baseline, set_id) if baseline is not None else None
        if candidates_file is not None:
            candidates = read_candidates(candidates_file)
            source: dict[str, Any] = {"file": str(candidates_file)}
            default_name = candidates_file.stem
        else:
            assert generation is not None
            with progress("candidates", len(cases)) as bar:
                candidates = generate(cases, generation, store, bar.update)
            source = {"endpoint": generation.endpoint, "model": generation.model,
                      "temperature": generation.temperature,
                      "cached": sum(c.cached for c in candidates.values())}
            default_name = generation.model
        concurrency = generation.concurrency if generation is not None else 8
        with progress("checks", len(cases)) as bar:
            results = score(cases, candidates, config, judge, concurrency, bar.update)
        run = build_run(name or default_name, set_id, results, config, base, source)
        if save and store is not None:
            save_run(store, run)
        return run
    finally:
        if own_store and store is not None:
            store.close()
