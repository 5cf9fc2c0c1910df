"""The judge gate's statistics (kappa, bootstrap interval, rates), the case -> task the
judge sees, the set loading, and the recording/comparison rule on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.evals.cases import (
    CaseInput,
    GoldenCase,
    GoldenManifest,
    content_sha256,
    set_id,
    write_cases,
)
from ls_llmtrace.evals.judgegate import (
    CaseResult,
    GateJudge,
    LoadedSet,
    agreement,
    binary_kappa,
    bootstrap_kappas,
    build_judge,
    case_task,
    drops,
    human_fails,
    load_set,
    per_category,
    run_gate,
)
from ls_llmtrace.judging.judges import RuleJudge
from ls_llmtrace.models import Message, ToolCall
from ls_llmtrace.store.judge_evals import JudgeEvaluation

# a hand-computed case: tp 3, fn 1, fp 2, tn 4 (n 10)
HUMAN = [True, True, True, True, False, False, False, False, False, False]
JUDGE = [True, True, True, False, True, True, False, False, False, False]
# observed 0.7; P(human fails) 0.4, P(judge fails) 0.5; expected 0.4*0.5 + 0.6*0.5 = 0.5;
# kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4


def test_hand_computed_agreement():
    result = agreement(HUMAN, JUDGE, resamples=0)
    assert result.kappa == pytest.approx(0.4)
    assert result.accuracy == pytest.approx(0.7)
    assert result.tpr == pytest.approx(0.75)
    assert result.tnr == pytest.approx(4 / 6)
    assert (result.tp, result.fn, result.fp, result.tn, result.n) == (3, 1, 2, 4, 10)
    assert result.ci_low == result.ci_high == result.kappa  # no resamples: no interval


@pytest.mark.parametrize("seed", range(5))
def test_kappa_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    human = rng.random(200) < 0.3
    judge = np.where(rng.random(200) < 0.7, human, rng.random(200) < 0.5)
    assert agreement(list(human), list(judge), resamples=0).kappa == pytest.approx(
        cohen_kappa_score(human, judge))
    # the vectorized kappa of the bootstrap agrees with scikit-learn row by row
    index = rng.integers(0, 200, size=(20, 200))
    rows = binary_kappa(human[index], judge[index])
    for row, i in zip(rows, index, strict=True):
        assert row == pytest.approx(cohen_kappa_score(human[i], judge[i]))


def test_binary_kappa_is_nan_when_both_raters_use_one_class():
    same = np.array([[True, True, True]])
    assert np.isnan(binary_kappa(same, same))[0]
    assert binary_kappa(np.array([True, False]), np.array([False, False])) == pytest.approx(0.0)


def test_bootstrap_is_reproducible_with_a_seed_and_contains_the_estimate():
    rng = np.random.default_rng(7)
    human = list(rng.random(300) < 0.25)
    judge = [h if rng.random() < 0.8 else not h for h in human]
    one = agreement(human, judge, resamples=500, seed=3)
    again = agreement(human, judge, resamples=500, seed=3)
    other = agreement(human, judge, resamples=500, seed=4)
    assert (one.ci_low, one.ci_high) == (again.ci_low, again.ci_high)
    assert (one.ci_low, one.ci_high) != (other.ci_low, other.ci_high)
    assert one.ci_low < one.kappa < one.ci_high
    assert 0.0 < one.ci_high - one.ci_low < 0.4
    assert np.array_equal(bootstrap_kappas(human, judge, 300, 9),
                          bootstrap_kappas(human, judge, 300, 9))
    assert len(bootstrap_kappas(human, judge, 700, 9)) == 700  # across blocks


def test_perfect_judge_and_constant_judge():
    perfect = agreement(HUMAN, HUMAN, resamples=200, seed=1)
    assert perfect.kappa == 1.0 and perfect.ci_low == perfect.ci_high == 1.0
    constant = agreement(HUMAN, [False] * len(HUMAN), resamples=200, seed=1)
    assert constant.kappa == 0.0 and constant.tpr == 0.0 and constant.tnr == 1.0


def test_agreement_needs_both_classes_from_the_reviewers():
    with pytest.raises(ConfigError, match="both failures and passing controls"):
        agreement([True, True], [True, False])


# cases ----------------------------------------------------------------------------------

def _case(i: int, kind: str = "failure", output: str = "An answer.", **extra) -> GoldenCase:
    extra.setdefault("input", CaseInput(messages=[Message(role="user",
                                                           content=f"question {i}")]))
    return GoldenCase(case_id=f"c{i}", trace_id=f"t{i}", kind=kind,  # type: ignore[arg-type]
                      output=output, verdict="fail" if kind == "failure" else "pass", **extra)


def test_case_task_is_the_trace_as_imported(default_schema):
    call = ToolCall(id="c1", name="lookup", arguments={"q": "x"}, result="42")
    case = _case(1, input=CaseInput(system_prompt="Be brief.",
                                    messages=[Message(role="user", content="q?")],
                                    tool_calls=[call]), model="m1")
    data = case_task(case, default_schema)
    assert data["answer"] == "An answer."
    assert data["system_prompt"] == "Be brief."
    assert data["messages"] == [{"role": "user", "content": "q?"}]
    assert data["tool_calls"] == [{"name": "lookup [c1]",
                                   "content": 'arguments: {"q": "x"}\nresult: 42'}]
    assert data["schema_version"] == default_schema.version_id
    assert data["metadata"]["model"] == "m1"


def test_human_verdict_from_the_schema_else_the_kind(default_schema):
    assert human_fails(_case(1), default_schema)
    assert not human_fails(_case(2, "control"), default_schema)
    odd = _case(3).model_copy(update={"verdict": "bad"})  # not a value of the schema
    assert human_fails(odd, default_schema)


def test_load_set_checks_the_manifest(tmp_path, default_schema, monkeypatch):
    cases = [_case(1), _case(2, "control")]
    folder = tmp_path / "set"
    write_cases(cases, folder / "cases.jsonl")
    with pytest.raises(ConfigError, match="no manifest: pass --schema"):
        load_set(folder, None)
    assert load_set(folder, default_schema).set_id == set_id("default", 1, cases)
    manifest = GoldenManifest(set_id="default@v1-abc", schema_id="default", schema_version=1,
                              content_sha256=content_sha256(cases),
                              built_at=datetime(2026, 1, 1, tzinfo=UTC))
    (folder / "manifest.json").write_text(manifest.model_dump_json(), encoding="utf-8")
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(Path(__file__).parents[2] / "label_configs"))
    loaded = load_set(folder, None)
    assert loaded.set_id == "default@v1-abc" and loaded.schema.version_id == "default@v1"
    write_cases([_case(1), _case(2, "control", output="edited")], folder / "cases.jsonl")
    with pytest.raises(ConfigError, match="do not match its manifest"):
        load_set(folder, None)


# the rule, on both engines --------------------------------------------------------------

def _evaluation(version: str, kappa: float, passed: bool = True, set_id: str = "default@v1-a",
                name: str = "judge-x", schema_version: int = 1) -> JudgeEvaluation:
    return JudgeEvaluation(
        judge_name=name, judge_version=version, set_id=set_id, schema_id="default",
        schema_version=schema_version, kappa=kappa, ci_low=kappa - 0.1, ci_high=kappa + 0.1,
        accuracy=0.8, tpr=0.7, tnr=None, n=100, passed=passed,
        evaluated_at=datetime(2026, 1, 1, tzinfo=UTC), details={"seed": 0})


def test_recorded_evaluation_reads_back(store):
    given = _evaluation("v1", 0.5)
    eval_id = store.record_judge_evaluation(given)
    [back] = store.judge_evaluations("judge-x")
    assert back == dataclasses.replace(given, eval_id=eval_id)
    assert store.judge_evaluations("other") == []


def test_reference_is_the_newest_passing_other_version(store):
    assert store.reference_evaluation("judge-x", "v1", "default@v1-a", "default", 1) is None
    first = store.record_judge_evaluation(_evaluation("v1", 0.6))
    store.record_judge_evaluation(_evaluation("v2", 0.2, passed=False))  # never a reference
    store.record_judge_evaluation(_evaluation("v9", 0.9, name="other-judge"))
    store.record_judge_evaluation(_evaluation("v3", 0.4, set_id="default@v1-b"))
    ref = store.reference_evaluation("judge-x", "v4", "default@v1-a", "default", 1)
    assert ref is not None and (ref.eval_id, ref.judge_version) == (first, "v1")
    # re-running v1 compares with another version, never itself: on its set none passed
    # but v3 passed on another set of the same schema
    ref = store.reference_evaluation("judge-x", "v1", "default@v1-a", "default", 1)
    assert ref is not None and ref.judge_version == "v3"
    # a set of a new schema version with no history of its own: no reference
    assert store.reference_evaluation("judge-x", "v4", "default@v2-c", "default", 2) is None
    later = store.record_judge_evaluation(_evaluation("v5", 0.55))
    ref = store.reference_evaluation("judge-x", "v6", "default@v1-a", "default", 1)
    assert ref is not None and ref.eval_id == later


def test_drop_rule_uses_the_point_estimates():
    ref = _evaluation("v1", 0.60)
    assert not drops(0.60, None, 0.05)  # the first evaluation passes
    assert not drops(0.55, ref, 0.05)  # exactly at the tolerance
    assert drops(0.549, ref, 0.05)
    assert not drops(0.70, ref, 0.0)
    assert drops(0.599, ref, 0.0)


class _Fixed:
    """A judge answering from a table (for the rule only; the CLI tests use real judges)."""

    name = "table"

    def __init__(self, fails: set[str]) -> None:
        self.fails = fails
        self.rules = RuleJudge()

    @property
    def version(self) -> str:
        return "t"

    def judge(self, task_data):
        verdict = self.rules.judge(task_data)
        label = "fail" if task_data["messages"][0]["content"] in self.fails else "pass"
        return dataclasses.replace(verdict, label=label)


def test_run_gate_records_and_fails_a_worse_version(store, default_schema):
    cases = [_case(i) for i in range(10)] + [_case(i, "control") for i in range(10, 30)]
    loaded = LoadedSet(set_id("default", 1, cases), default_schema, cases, None)
    truth = {f"question {i}" for i in range(10)}
    good = GateJudge("table", "good", _Fixed(truth))
    worse = GateJudge("table", "worse", _Fixed(set(sorted(truth)[:5]) | {"question 20"}))
    first = run_gate(store, loaded, good, resamples=100)
    assert first.passed and first.reference is None and first.agreement.kappa == 1.0
    assert "no accepted earlier version of table" in first.verdict_line()
    dry = run_gate(store, loaded, worse, resamples=100, record=False)
    assert not dry.passed and dry.evaluation.eval_id is None
    assert len(store.judge_evaluations("table")) == 1
    failed = run_gate(store, loaded, worse, resamples=100)
    assert not failed.passed and failed.reference is not None
    assert failed.reference.judge_version == "good"
    line = failed.verdict_line()
    assert line.startswith("FAIL: table worse kappa ") and " below good kappa 1.000 [" in line
    again = run_gate(store, loaded, good, resamples=100)  # never compared with itself
    assert again.passed and again.reference is None  # the failed one is no reference
    assert [e.passed for e in store.judge_evaluations("table")] == [True, False, True]


def test_a_judge_without_a_verdict_counts_against_itself(store, default_schema):
    class Silent(_Fixed):
        def judge(self, task_data):
            return None if task_data["messages"][0]["content"] == "question 0" \
                else super().judge(task_data)

    cases = [_case(0), _case(1), _case(2, "control"), _case(3, "control")]
    loaded = LoadedSet("s", default_schema, cases, None)
    result = run_gate(store, loaded, GateJudge("silent", "1",
                                               Silent({"question 0", "question 1"})),
                      resamples=0, record=False)
    assert result.abstained == 1
    assert result.agreement.tp == 1 and result.agreement.fn == 1


def test_per_category_counts_failed_and_named():
    results = [
        CaseResult("a", True, True, "fail", ("made_up_fact",), ("made_up_fact",)),
        CaseResult("b", True, False, "pass", (), ("made_up_fact", "ignored_tool_result")),
        CaseResult("c", False, True, "fail", ("made_up_fact",), ()),
    ]
    assert per_category(results) == {
        "ignored_tool_result": {"n": 1, "failed": 0, "named": 0, "recall": 0.0,
                                "precision": None},
        "made_up_fact": {"n": 2, "failed": 1, "named": 1, "recall": 0.5, "precision": 0.5},
    }
    silent = [CaseResult("a", True, True, "fail", (), ("made_up_fact",))]
    assert per_category(silent) == {"made_up_fact": {"n": 1, "failed": 1}}


def test_llm_judge_few_shot_leaves_out_the_sets_traces(store, default_schema, tmp_path,
                                                     monkeypatch):
    """A few-shot example from the set under test would hand the judge the answer."""
    import json

    golden = tmp_path / "few.jsonl"
    golden.write_text("".join(json.dumps({
        "trace_id": trace_id, "label": "fail", "input": {"messages": [
            {"role": "user", "content": trace_id}]}, "bad_output": "x"}) + "\n"
        for trace_id in ("t1", "elsewhere")), encoding="utf-8")
    monkeypatch.setenv("LS_LLMTRACE_JUDGE_GOLDEN", str(golden))
    monkeypatch.setenv("LS_LLMTRACE_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # never called
    monkeypatch.setenv("LS_LLMTRACE_LLM_MODEL", "m")
    monkeypatch.setenv("LS_LLMTRACE_JUDGE_CACHE", "off")
    built = build_judge("llm", default_schema, store, [_case(1), _case(2, "control")])
    assert built.details["few_shot"] == 1
    shown = [turn["content"] for turn in built.judge.examples]  # type: ignore[attr-defined]
    assert any('"content": "elsewhere"' in text for text in shown)
    assert not any('"content": "t1"' in text for text in shown)
    assert built.name == "llmtrace-llm" and built.version.startswith("m:1.")
    other = build_judge("llm", default_schema, store, [_case(5)], name="team-judge")
    assert other.name == "team-judge" and other.version != built.version  # examples differ
