"""The regression gate end to end through `eval run`: planted regressions are all caught,
an improved candidate passes with no false alarm, baselines come from the store or a file,
the JUnit XML reads in a real JUnit reader (junitparser), the Markdown names what changed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import junitparser
import pytest
from click.testing import CliRunner
from tests.support.golden_sets import KINDS, build_set, write_set

from ls_llmtrace.cli import main
from ls_llmtrace.evals.candidates import Candidate, write_candidates
from ls_llmtrace.evals.gate import (
    GateConfig,
    GateRun,
    build_run,
    compare,
    paired_bootstrap,
    score,
)
from ls_llmtrace.store import Store

N = 40  # 8 cases of each of the 5 kinds


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.delenv("LS_LLMTRACE_DEBUG", raising=False)
    return tmp_path


@pytest.fixture
def golden(tmp_path: Path):
    cases, improved, regressed = build_set(N)
    folder = write_set(cases, tmp_path / "golden" / "set")
    return folder, cases, improved, regressed


def _run(*args: str) -> tuple[int, str]:
    """Exit code and output (with --json: stdout only, the progress bar is on stderr)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout if "--json" in args else result.output


def _planted(improved: dict[str, str], regressed: dict[str, str]) -> tuple[dict[str, str],
                                                                           set[str]]:
    """Every third case regressed, across all five kinds."""
    ids = sorted(improved)
    planted = {case_id for i, case_id in enumerate(ids) if i % 3 == 0}
    mixed = {c: regressed[c] if c in planted else improved[c] for c in ids}
    return mixed, planted


def test_the_gate_catches_every_planted_regression_and_names_check_and_category(
        home, golden, tmp_path):
    folder, cases, improved, regressed = golden
    write_candidates(improved, tmp_path / "main.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "main.jsonl"),
                     "--name", "main")
    assert code == 0, out
    assert f"{N} of {N} cases pass" in out

    mixed, planted = _planted(improved, regressed)
    assert {c.split("-")[0] for c in planted} == set(KINDS)  # across every category
    write_candidates(mixed, tmp_path / "pr.jsonl")
    junit, md = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "pr.jsonl"),
                     "--baseline", "main", "--junit", str(junit), "--markdown", str(md),
                     "--json")
    assert code == 1
    run = GateRun.model_validate_json(out)
    assert run.comparison is not None
    assert set(run.comparison.newly_failing) == planted  # 100% caught, nothing else
    assert run.comparison.fixed == []
    assert run.regression and "newly failing" in run.reasons[0]

    # a real JUnit consumer reads the report: one test case per golden case
    xml = junitparser.JUnitXml.fromfile(str(junit))
    testcases = [tc for suite in xml for tc in suite]
    assert len(testcases) == N
    failed = {tc.name: tc for tc in testcases if not tc.is_passed}
    assert set(failed) == planted
    tool = failed[next(c for c in planted if c.startswith("ignored_tool_result"))]
    assert tool.classname == "golden.ignored_tool_result"
    message = tool.result[0].message
    assert "check tool_result_reflected failed (category ignored_tool_result)" in message
    control = failed[next(c for c in planted if c.startswith("control"))]
    assert control.classname == "golden.control"
    assert "check similarity failed (category (control))" in control.result[0].message

    summary = md.read_text(encoding="utf-8")
    assert "Regression gate FAILED" in summary
    assert f"Newly failing: {len(planted)}; fixed: 0" in summary
    assert "| ignored_tool_result | 8 |" in summary


def test_an_improved_candidate_passes_with_no_false_alarm(home, golden, tmp_path):
    folder, cases, improved, regressed = golden
    # the baseline still has every third case broken; the improvement fixes them and
    # rewords the rest (case, punctuation, key order, a synonym)
    mixed, planted = _planted(improved, regressed)
    write_candidates(mixed, tmp_path / "old.jsonl")
    write_candidates(improved, tmp_path / "new.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "old.jsonl"),
                     "--json")
    assert code == 0  # no baseline: nothing to regress from
    baseline = tmp_path / "old-run.json"
    baseline.write_text(out, encoding="utf-8")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "new.jsonl"),
                     "--baseline", str(baseline), "--json", "--no-save")
    assert code == 0, out
    run = GateRun.model_validate_json(out)
    assert run.comparison is not None and run.comparison.newly_failing == []
    assert set(run.comparison.fixed) == planted
    assert run.totals["fail"] == 0 and not run.reasons
    assert run.comparison.ci_low is not None and run.comparison.ci_low > 0


def test_baseline_last_is_the_newest_stored_run_and_runs_are_stored(home, golden, tmp_path):
    folder, cases, improved, regressed = golden
    write_candidates(improved, tmp_path / "good.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "good.jsonl"),
                     "--baseline", "last")
    assert code == 0 and "no stored run to compare with yet" in out
    one_bad = dict(improved)
    first = sorted(improved)[0]
    one_bad[first] = regressed[first]
    write_candidates(one_bad, tmp_path / "bad.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "bad.jsonl"),
                     "--baseline", "last")
    assert code == 1
    assert f"newly failing {first}: check" in out and "REGRESSION" in out
    with Store() as store:
        runs = store.eval_runs()
    assert [r["name"] for r in runs] == ["bad", "good"]
    assert runs[0]["passed"] == N - 1 and runs[1]["passed"] == N


def test_tolerance_is_the_allowed_overall_drop_when_the_set_grows(home, golden, tmp_path):
    folder, cases, improved, regressed = golden
    write_candidates(improved, tmp_path / "good.jsonl")
    assert _run("eval", "run", str(folder), "--candidates", str(tmp_path / "good.jsonl"),
                "--name", "main")[0] == 0
    # the set grows by one case the candidate fails: no case is newly failing, but the
    # pass rate drops by 1/41
    bigger, more_good, more_bad = build_set(N + 5)
    grown = [*cases, bigger[N]]
    folder2 = write_set(grown, tmp_path / "golden" / "grown")
    cands = {**improved, bigger[N].case_id: more_bad[bigger[N].case_id]}
    write_candidates(cands, tmp_path / "grown.jsonl")
    args = ["eval", "run", str(folder2), "--candidates", str(tmp_path / "grown.jsonl"),
            "--baseline", "main", "--no-save", "--json"]
    code, out = _run(*args)
    assert code == 1 and "pass rate dropped" in GateRun.model_validate_json(out).reasons[0]
    code, out = _run(*args, "--tolerance", "0.05")
    run = GateRun.model_validate_json(out)
    assert code == 0 and run.comparison is not None
    assert run.comparison.new_cases == [bigger[N].case_id]


def test_bad_input_exits_2_with_one_line(home, golden, tmp_path):
    folder, *_ = golden
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"case_id": "x"}\n', encoding="utf-8")
    code, out = _run("eval", "run", str(folder), "--candidates", str(bad))
    assert code == 2 and "line 1" in out
    config = tmp_path / "gate.yaml"
    config.write_text("checks: [exactly]\n", encoding="utf-8")
    good = tmp_path / "good.jsonl"
    write_candidates({}, good)
    code, out = _run("eval", "run", str(folder), "--candidates", str(good), "--config",
                     str(config))
    assert code == 2 and "unknown checks ['exactly']" in out
    code, out = _run("eval", "run", str(folder))
    assert code == 2 and "--candidates" in out
    code, out = _run("eval", "run", str(folder), "--candidates", str(good), "--baseline",
                     "nope")
    assert code == 2 and "no baseline 'nope'" in out


def test_missing_candidates_are_errors_and_count_as_failing(home, golden, tmp_path):
    folder, cases, improved, _ = golden
    partial = dict(improved)
    missing = sorted(partial)[:2]
    for case_id in missing:
        del partial[case_id]
    write_candidates(partial, tmp_path / "partial.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "partial.jsonl"),
                     "--json", "--no-save")
    run = GateRun.model_validate_json(out)
    assert run.totals["error"] == 2 and run.pass_rate == (N - 2) / N
    assert {r.case_id for r in run.results if r.status == "error"} == set(missing)


def test_gate_config_category_checks_and_the_rules_judge(home, golden, tmp_path):
    folder, cases, improved, regressed = golden
    # a truncated answer close enough to the reference to pass the similarity check:
    # the rule judge (cut-off answer) still fails it
    target = next(c for c in cases if c.case_id.startswith("incomplete"))
    assert target.reference is not None
    cut = dict(improved)
    cut[target.case_id] = target.reference.rsplit(" ", 1)[0] + " Exp"
    write_candidates(cut, tmp_path / "cut.jsonl")
    args = ["eval", "run", str(folder), "--candidates", str(tmp_path / "cut.jsonl"),
            "--json", "--no-save"]
    run = GateRun.model_validate_json(_run(*args)[1])
    assert run.totals["fail"] == 0
    run = GateRun.model_validate_json(_run(*args, "--judge", "rules")[1])
    failed = [r for r in run.results if r.status == "fail"]
    assert [r.case_id for r in failed] == [target.case_id]
    assert "check judge:llmtrace-rules failed" in (failed[0].failure_message() or "")
    # a category given its own check in the config
    config = tmp_path / "gate.yaml"
    config.write_text("categories:\n  incomplete: [exact]\n", encoding="utf-8")
    run = GateRun.model_validate_json(_run(*args, "--config", str(config))[1])
    failed = [r for r in run.results if r.status == "fail"]
    assert {r.case_id.split("-")[0] for r in failed} == {"incomplete"}
    assert "(category incomplete)" in (failed[0].failure_message() or "")


def test_per_category_results_and_the_paired_bootstrap_interval():
    cases, improved, regressed = build_set(50)
    config = GateConfig()
    good = score(cases, {c: Candidate(o) for c, o in improved.items()}, config)
    bad = score(cases, {c: Candidate(o) for c, o in regressed.items()}, config)
    half = [g if i % 2 else b for i, (g, b) in enumerate(zip(good, bad, strict=True))]
    base = build_run("base", "s@v1-x", good, config, None)
    run = build_run("half", "s@v1-x", half, config, base)
    assert set(run.groups) == {"(control)", "hallucination", "ignored_tool_result",
                               "incomplete", "wrong_format"}
    assert all(s.total == 10 for s in run.groups.values())
    c = compare(half, base)
    assert c.delta_common == -0.5
    assert c.ci_low is not None and c.ci_high is not None
    assert c.ci_low < -0.5 < c.ci_high < 0  # a drop, surely
    assert (c.ci_low, c.ci_high) == (compare(half, base).ci_low, compare(half, base).ci_high)
    import numpy as np
    same = paired_bootstrap(np.ones(30), np.ones(30))
    assert same == (0.0, 0.0)


def test_stored_runs_on_both_engines(store):
    cases, improved, _ = build_set(10)
    results = score(cases, {c: Candidate(o) for c, o in improved.items()}, GateConfig())
    run = build_run("main", "default@v1-abc", results, GateConfig(), None)
    from ls_llmtrace.evals.gate import find_baseline, save_run

    save_run(store, run)
    save_run(store, run)  # idempotent by run id
    assert len(store.eval_runs()) == 1
    assert find_baseline(store, run.run_id, "default@v1-zzz") == run
    assert find_baseline(store, "main", "other@v1-abc") == run
    assert find_baseline(store, "last", "default@v1-new") == run
    assert find_baseline(store, "last", "other@v2-abc") is None
    store.cache_candidates([("k1", "http://x/v1", "m", "out 1")])
    store.cache_candidates([("k1", "http://x/v1", "m", "out 2"), ("k2", "http://x/v1", "m", "b")])
    assert store.cached_candidates(["k1", "k2", "k3"]) == {"k1": "out 2", "k2": "b"}


def test_json_output_round_trips(home, golden, tmp_path):
    folder, cases, improved, _ = golden
    write_candidates(improved, tmp_path / "c.jsonl")
    code, out = _run("eval", "run", str(folder), "--candidates", str(tmp_path / "c.jsonl"),
                     "--json", "--no-save")
    raw = json.loads(out)
    assert raw["totals"] == {"cases": N, "pass": N, "fail": 0, "error": 0, "skipped": 0}
    assert raw["set_id"].startswith("default@v1-")


def test_the_example_ci_workflow_calls_eval_run_with_options_that_exist():
    import shlex

    import yaml

    from ls_llmtrace.cli.gate import eval_run

    root = Path(__file__).resolve().parents[2]
    workflow = yaml.safe_load((root / "examples" / "ci" / "golden-gate.yml").read_text())
    step = next(s for s in workflow["jobs"]["gate"]["steps"]
                if s.get("name") == "Run the regression gate")
    words = shlex.split(step["run"].replace("\\\n", " "))
    assert words[:3] == ["ls-llmtrace", "eval", "run"]
    known = {opt for p in eval_run.params for opt in (*p.opts, *p.secondary_opts)}
    used = {w for w in words if w.startswith("--")}
    assert used - known == set() and {"--junit", "--markdown", "--baseline"} <= used


def test_a_case_naming_an_unknown_check_fails_alone():
    cases, improved, _ = build_set(5)
    cases[0] = cases[0].model_copy(update={"checks": ["similarity", "telepathy"]})
    results = score(cases, {c: Candidate(o) for c, o in improved.items()}, GateConfig())
    assert [r.status for r in results] == ["fail", "pass", "pass", "pass", "pass"]
    assert "check telepathy failed" in (results[0].failure_message() or "")


def test_planted_regressions_in_a_thousand_cases_are_all_caught_and_nothing_else():
    cases, improved, regressed = build_set(1000)
    config = GateConfig()
    base = build_run("main", "s@v1-x", score(cases, {c: Candidate(o) for c, o in
                                                     improved.items()}, config), config, None)
    assert base.totals["pass"] == 1000
    mixed, planted = _planted(improved, regressed)
    run = build_run("pr", "s@v1-x", score(cases, {c: Candidate(o) for c, o in mixed.items()},
                                          config), config, base)
    assert run.comparison is not None and set(run.comparison.newly_failing) == planted
    by_kind = Counter("(control)" if c.startswith("control") else c.split("-")[0]
                      for c in planted)
    assert {g: s.total - s.passed for g, s in run.groups.items()} == dict(by_kind)
    assert min(by_kind.values()) > 60  # every category had its share of regressions
