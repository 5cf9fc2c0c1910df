"""Redaction keeps span offsets true: a span marked on the redacted text is stored as the
reviewer saw it, with its range in the original text."""

from __future__ import annotations

import re

import pytest
from tests.unit.paths import LABEL_CONFIGS

from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.ingest.redact import compile_patterns, original_range, redact
from ls_llmtrace.models import Trace
from ls_llmtrace.records.mapping import map_annotation
from ls_llmtrace.schema.model import load_schema

ANSWER = ("Write to ana.lopez@example.com or call +1 415 555 2671 today; "
          "your key sk-proj-A1b2C3d4E5f6G7h8I9j0 was revoked.")
OPTIONS = ReviewOptions(redact=("email", "phone", "api_key"))


@pytest.fixture
def v2():
    return load_schema(LABEL_CONFIGS / "default.v2.yaml")


def _span(shown: str, quote: str) -> tuple[int, int]:
    start = shown.index(quote)
    return start, start + len(quote)


def _annotation(value: dict, kind: str = "labels", name: str = "answer_spans") -> dict:
    return {"id": 7, "created_at": "2026-01-02T03:04:05Z", "completed_by": 1,
            "result": [{"id": "r1", "from_name": name, "to_name": "answer" if kind == "labels"
                        else "messages", "type": kind, "value": value}]}


def test_round_trip_of_a_span_over_redacted_text(v2):
    trace = Trace(trace_id="pii", output=ANSWER)
    task = trace_to_task(trace, v2, OPTIONS)
    shown = task["data"]["answer"]
    assert "ana.lopez" not in shown and "[email]" in shown and "[phone]" in shown
    label = v2.span_field.labels[0]
    cases = [
        ("[email]", "ana.lopez@example.com"),                      # only redacted text
        ("Write to [email] or call", "Write to ana.lopez@example.com or call"),  # across it
        ("[phone] today; your key [api_key]",                        # two markers
         "+1 415 555 2671 today; your key sk-proj-A1b2C3d4E5f6G7h8I9j0"),
        ("was revoked", "was revoked"),                              # after the markers
        ("email] or", "ana.lopez@example.com or"),                   # starts inside one
    ]
    for quote, original in cases:
        start, end = _span(shown, quote)
        value = {"start": start, "end": end, "text": shown[start:end], "labels": [label]}
        task_with_id = {"id": 3, **task}
        records = map_annotation(task_with_id, _annotation(value), v2, project_id=1).records
        (span,) = [r for r in records if r.scope.kind == "text_range"]
        assert (span.scope.start, span.scope.end, span.scope.text) == (start, end, quote)
        assert trace.output[span.scope.original_start:span.scope.original_end] == original


def test_message_span_maps_into_the_original_message(v2):
    content = "I am bob@example.org, my number is (212) 555-0188, please help"
    trace = Trace.model_validate({"trace_id": "m", "output": "ok", "messages": [
        {"role": "user", "content": "hello"}, {"role": "user", "content": content}]})
    task = {"id": 4, **trace_to_task(trace, v2, OPTIONS)}
    shown = task["data"]["messages"][1]["content"]
    assert set(task["data"]["redactions"]) == {"messages.1"}  # only what changed
    start, end = _span(shown, "[email], my number is [phone]")
    value = {"start": "1", "end": "1", "startOffset": start, "endOffset": end,
             "text": shown[start:end], "paragraphlabels": [v2.span_field.labels[0]]}
    records = map_annotation(task, _annotation(value, "paragraphlabels", "message_spans"),
                             v2, project_id=1).records
    (span,) = [r for r in records if r.scope.kind == "text_range"]
    assert span.scope.text == "[email], my number is [phone]"
    assert content[span.scope.original_start:span.scope.original_end] == \
        "bob@example.org, my number is (212) 555-0188"


def test_unredacted_text_keeps_its_offsets_and_records_nothing(v2):
    trace = Trace(trace_id="plain", output="Nothing secret here at all.")
    task = {"id": 5, **trace_to_task(trace, v2, OPTIONS)}
    assert "redactions" not in task["data"]
    value = {"start": 8, "end": 14, "text": "secret", "labels": [v2.span_field.labels[0]]}
    records = map_annotation(task, _annotation(value), v2, project_id=1).records
    (span,) = [r for r in records if r.scope.kind == "text_range"]
    assert (span.scope.start, span.scope.end) == (8, 14)
    assert span.scope.original_start is None and span.scope.original_end is None


def test_patterns_applied_in_turn_compose_their_ranges():
    """A later pattern that swallows an earlier marker maps to the whole original."""
    patterns = compile_patterns(("email",), (r"contact \[email\] now",))
    text = "Please contact ann@example.com now or later"
    shown, replacements = redact(text, patterns)
    assert shown == "Please [redacted] or later"
    assert shown == re.sub(r"contact \[email\] now", "[redacted]",
                           re.sub(patterns[0][0], "[email]", text))
    start, end = _span(shown, "[redacted] or")
    first, last = original_range(replacements, start, end)
    assert text[first:last] == "contact ann@example.com now or"
    start, end = _span(shown, "later")
    first, last = original_range(replacements, start, end)
    assert text[first:last] == "later"


def test_truncation_keeps_the_replacements_before_the_cut():
    options = ReviewOptions(max_chars=100, redact=("email",))
    text = "a@b.io " + "x" * 200 + " c@d.io"
    shown, replacements = options.clean_with_replacements(text)
    assert shown.startswith("[email] x") and "more characters cut" in shown
    assert replacements == [(0, 7, 0, 6)]
