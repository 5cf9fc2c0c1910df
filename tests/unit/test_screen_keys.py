"""The review screen's keys filled in for a task converted before they existed."""

from __future__ import annotations

from ls_llmtrace.ingest.convert import ReviewOptions, screen_keys, trace_to_task
from ls_llmtrace.models import Document, Message, Trace
from ls_llmtrace.schema.model import parse_schema

SCHEMA = parse_schema("id: s\nversion: 1\nowner: a@example.com\nfields:\n"
                      "  - {type: label, values: [pass, fail]}\n")


def test_a_task_of_today_lacks_nothing() -> None:
    trace = Trace(trace_id="t", system_prompt="sys", output="x",
                  messages=[Message(role="user", content="q")],
                  documents=[Document(content="d")])
    data = trace_to_task(trace, SCHEMA, ReviewOptions())["data"]
    assert screen_keys(data) == {}


def test_an_old_task_gets_what_todays_conversion_gives_it() -> None:
    trace = Trace(trace_id="t", system_prompt="sys", output="x",
                  messages=[Message(role="user", content="q")],
                  documents=[Document(content="d")])
    data = trace_to_task(trace, SCHEMA, ReviewOptions())["data"]
    old = {k: v for k, v in data.items()
           if k not in ("metadata_text", "sections", "steps", "steps_shown")}
    filled = screen_keys(old)
    assert filled["metadata_text"] == data["metadata_text"]
    assert filled["sections"] == data["sections"]
    assert filled["steps"] == [] and filled["steps_shown"] == []


def test_placeholders_and_odd_shapes_make_empty_sections() -> None:
    filled = screen_keys({"system_prompt": "(none)", "metadata": "not a table",
                          "documents": [{"title": "(none)", "content": "no retrieved documents"},
                                        "junk"], "messages": "junk", "answer": None})
    assert "metadata_text" not in filled
    assert filled["sections"] == {"system_prompt": [], "documents": [], "answer_code": [],
                                  "conversation_code": []}
