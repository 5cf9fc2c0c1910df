"""judges/rules.py: the offline rule judge."""

from __future__ import annotations

import pytest

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.judging.judges import RuleJudge, Verdict
from ls_llmtrace.models import Trace

JUDGE = RuleJudge()


def judge(answer: str, **metadata: str) -> Verdict:
    verdict = JUDGE.judge({"answer": answer, "metadata": metadata})
    assert verdict is not None
    return verdict


@pytest.mark.parametrize("answer", ["", "   \n\t "])
def test_empty_answer_fails(answer):
    v = judge(answer)
    assert v.label == "fail"
    assert v.score == 0.0
    assert "empty" in v.explanation


def test_missing_answer_key_fails():
    v = JUDGE.judge({})
    assert v is not None and v.label == "fail"


def test_error_in_metadata_fails_even_with_a_good_answer():
    v = judge("The weather in Paris is rainy.", error="upstream timeout")
    assert v.label == "fail"
    assert "upstream timeout" in v.explanation
    assert v.confidence == pytest.approx(0.9)


def test_cut_off_answer_fails():
    answer = "The three largest cities in France are Paris, Marseille and"
    v = judge(answer)
    assert v.label == "fail"
    assert "cut off" in v.explanation
    assert "Marseille and" in v.explanation


def test_short_answer_without_period_passes():
    assert judge("Paris").label == "pass"  # 40 characters or fewer is not judged cut off


def test_normal_sentence_passes():
    v = judge("The weather in Paris is currently rainy with a temperature of 57°F.")
    assert v.label == "pass"
    assert v.score == pytest.approx(0.7)
    assert v.confidence < 0.5  # a rule judge is not sure about correctness


def test_markdown_table_ending_with_pipe_passes():
    table = ("| city | population |\n|------|------------|\n| Paris | 2.1M |\n"
             "| Marseille | 0.87M |")
    assert judge(table).label == "pass"


def test_list_ending_without_period_passes():
    answer = "Common fruits you can buy in most supermarkets:\n1. Apples\n2. Bananas\n3. Pears"
    assert judge(answer).label == "pass"


@pytest.mark.parametrize("answer", [
    "I'm sorry, but I can't help with booking flights on this platform today.",
    "As an AI language model, I do not have opinions about football teams at all.",
])
def test_refusal_fails_softly(answer):
    v = judge(answer)
    assert v.label == "fail"
    assert v.score == pytest.approx(0.3)
    assert "refusal" in v.explanation


def test_custom_labels():
    custom = RuleJudge(pass_label="good", fail_label="bad")
    assert custom.judge({"answer": ""}).label == "bad"
    assert custom.judge({"answer": "All good."}).label == "good"


def test_identity():
    assert JUDGE.name == "llmtrace-rules"
    assert JUDGE.version == "1"


@pytest.mark.parametrize(("trace_id", "label"), [
    ("halueval-general-1", "fail"),   # a word list that stops at "show,"
    ("halueval-general-5", "pass"),   # a markdown table
    ("otel-genai-weather-chatcmpl-CQF10eCkoFphJZJQkzzN6EkTD0AVF", "pass"),
    ("halueval-general-19", "fail"),  # HTML cut off at "</p"
])
def test_sample_traces_through_the_task(sample_traces, default_schema, trace_id, label):
    data = trace_to_task(sample_traces[trace_id], default_schema)["data"]
    assert JUDGE.judge(data).label == label


def test_error_reaches_the_judge_through_the_task(default_schema):
    trace = Trace.model_validate({"trace_id": "e", "output": "Fine.",
                                  "metadata": {"error": "rate limited"}})
    v = JUDGE.judge(trace_to_task(trace, default_schema)["data"])
    assert v.label == "fail" and "rate limited" in v.explanation
