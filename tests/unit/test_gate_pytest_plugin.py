"""`pytest --llmtrace-golden SET` in a real pytest session (pytester), the plugin loaded
through its pytest11 entry point as any installed project would load it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.support.fake_llm_server import FakeLLM
from tests.support.golden_sets import build_set, write_set

# ls_llmtrace.evals.gate is loaded here, before the inner sessions: pytester unloads what
# a session imported, and numpy must not be imported twice in one process
import ls_llmtrace.evals.gate  # noqa: F401
from ls_llmtrace.evals.candidates import write_candidates

pytest_plugins = ["pytester"]


@pytest.fixture
def golden(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(pytester.path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{pytester.path / 'store.sqlite'}")
    cases, improved, regressed = build_set(10)
    folder = write_set(cases, pytester.path / "golden" / "set")
    return folder, cases, improved, regressed


def test_each_golden_case_is_a_test_failing_with_check_and_category(pytester, golden):
    folder, cases, improved, regressed = golden
    broken = {c.case_id for c in cases[:5]}  # one of each kind
    write_candidates({c: regressed[c] if c in broken else improved[c] for c in improved},
                     pytester.path / "cands.jsonl")
    # a test of the project's own beside the set: only the golden cases run by default
    pytester.makepyfile(test_own="def test_own():\n    assert True\n")
    result = pytester.runpytest("--llmtrace-golden", str(folder), "--llmtrace-candidates",
                                str(pytester.path / "cands.jsonl"), "-p", "no:cacheprovider",
                                "--junitxml", str(pytester.path / "report.xml"))
    result.assert_outcomes(passed=5, failed=5)
    result.stdout.fnmatch_lines([
        "*golden case ignored_tool_result-0000*",
        "check tool_result_reflected failed (category ignored_tool_result)*",
        "*golden case incomplete-0003*",
        "check similarity failed (category incomplete)*",
    ])
    # pytest's own JUnit report carries the same verdicts
    root = ET.parse(pytester.path / "report.xml").getroot()
    failed = {tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None}
    assert failed == broken


def test_explicit_paths_run_beside_the_golden_cases(pytester, golden):
    folder, cases, improved, _ = golden
    write_candidates(improved, pytester.path / "cands.jsonl")
    pytester.makepyfile(test_own="def test_own():\n    assert True\n")
    result = pytester.runpytest("test_own.py", "--llmtrace-golden", str(folder),
                                "--llmtrace-candidates", str(pytester.path / "cands.jsonl"))
    result.assert_outcomes(passed=11)


def test_generated_candidates_and_a_bad_run_fails_every_case_once(pytester, golden):
    folder, cases, improved, _ = golden
    with FakeLLM() as llm:
        for case_id, answer in improved.items():
            llm.script(case_id, {"status": 200, "content": answer})
        result = pytester.runpytest("--llmtrace-golden", str(folder), "--llmtrace-endpoint",
                                    llm.base_url, "--llmtrace-model", "m")
        result.assert_outcomes(passed=10)
        assert llm.stats()["calls"] == 10
    result = pytester.runpytest("--llmtrace-golden", str(folder), "--llmtrace-endpoint",
                                "http://127.0.0.1:9/v1")  # no --llmtrace-model
    result.assert_outcomes(failed=10)
    result.stdout.fnmatch_lines(["*the golden set could not be run: --llmtrace-endpoint "
                                 "needs --llmtrace-model*"])


def test_no_option_no_effect(pytester):
    pytester.makepyfile(test_own="def test_own():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--llmtrace-golden", str(Path("/nonexistent/set")))
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_cases_carry_their_category_as_a_marker(pytester, golden):
    folder, cases, improved, _ = golden
    write_candidates(improved, pytester.path / "cands.jsonl")
    result = pytester.runpytest("--llmtrace-golden", str(folder), "--llmtrace-candidates",
                                str(pytester.path / "cands.jsonl"), "-m",
                                "llmtrace_category(name='ignored_tool_result')")
    result.assert_outcomes(passed=2)
