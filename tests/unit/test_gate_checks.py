"""The gate's checks, one by one (pure: no server, no store)."""

from __future__ import annotations

import pytest

from ls_llmtrace.evals.cases import CaseInput, GoldenCase
from ls_llmtrace.evals.checks import CheckParams, normalize, run_check, similarity
from ls_llmtrace.models import Message, ToolCall

PARAMS = CheckParams(similarity_threshold=0.8)


def case(reference: str | None, output: str = "the bad one", **changes) -> GoldenCase:
    fields = {"case_id": "c1", "trace_id": "t1", "kind": "failure", "verdict": "fail",
              "input": CaseInput(messages=[Message(role="user", content="hi")]),
              "output": output, "corrected_output": reference, "reference": reference}
    fields.update(changes)
    return GoldenCase(**fields)


def passed(name: str, golden: GoldenCase, candidate: str) -> bool | None:
    result = run_check(name, golden, candidate, PARAMS)
    return None if result is None else result.passed


def test_normalize_folds_case_whitespace_and_punctuation():
    assert normalize("  Hello,\n  WORLD!! \u201cok\u201d ") == "hello world ok"


@pytest.mark.parametrize(("name", "candidate", "expected"), [
    ("exact", "It is rainy.", True),
    ("exact", "it is rainy", False),
    ("normalized", "  it IS rainy!", True),
    ("normalized", "it is sunny", False),
    ("contains", "Well: it is rainy, 57F.", True),
    ("contains", "it is raining", False),
    ("similarity", "It is rainy now.", True),
    ("similarity", "Sunshine everywhere and no clouds", False),
])
def test_reference_checks(name, candidate, expected):
    assert passed(name, case("It is rainy."), candidate) is expected


def test_similarity_is_rapidfuzz_ratio_of_normalized_texts():
    assert similarity("It is RAINY.", "it is rainy") == 1.0
    assert 0.0 < similarity("abcd", "abxy") < 1.0


def test_json_equal_ignores_key_order_and_fences_but_not_values():
    golden = case('{"a": 1, "b": [1, 2]}')
    assert passed("json_equal", golden, '```json\n{"b": [1, 2], "a": 1}\n```') is True
    assert passed("json_equal", golden, '{"a": 2, "b": [1, 2]}') is False
    assert passed("json_equal", golden, "a: 1") is False


def test_reference_checks_do_not_apply_without_a_reference():
    golden = case(None)
    assert all(passed(n, golden, "x") is None for n in
               ("exact", "normalized", "contains", "json_equal", "similarity", "not_bad_output"))


def test_not_bad_output_fails_a_candidate_closer_to_the_rejected_output():
    golden = case("Tower 7 is 107 metres tall.", output="Tower 7 is 321 metres tall.")
    assert passed("not_bad_output", golden, "Tower 7 is 321 metres tall!") is False
    assert passed("not_bad_output", golden, "Tower 7 is 322 metres tall.") is False
    assert passed("not_bad_output", golden, "Tower 7 is 107 metres high.") is True


def test_tool_result_reflected_wants_the_value_the_bad_output_ignored():
    golden = case("It is rainy and 57F in Paris.", output="It is sunny in Paris.",
                  categories=["ignored_tool_result"],
                  input=CaseInput(messages=[Message(role="user", content="Paris?")],
                                  tool_calls=[ToolCall(name="weather", result="rainy, 57F")]))
    result = run_check("tool_result_reflected", golden, "57F and rain in Paris", PARAMS,
                       category="ignored_tool_result")
    assert result is not None and result.passed and result.category == "ignored_tool_result"
    # "Paris" is in the tool-free bad output too: mentioning it does not reflect the result
    assert passed("tool_result_reflected", golden, "Sunny in Paris, lovely.") is False


def test_tool_result_reflected_reads_tool_messages_and_skips_without_results():
    golden = case("ok", input=CaseInput(messages=[
        Message(role="user", content="status?"),
        Message(role="tool", content='{"status": "DEGRADED", "errors": 12}')]))
    assert passed("tool_result_reflected", golden, "The service is DEGRADED.") is True
    assert passed("tool_result_reflected", case("ok"), "anything") is None
