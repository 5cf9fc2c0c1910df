"""convert.py: Trace -> Label Studio task."""

from __future__ import annotations

import json

from ls_llmtrace.ingest.convert import EMPTY_CONVERSATION, trace_to_task
from ls_llmtrace.models import Trace

OTEL_ID = "otel-genai-weather-chatcmpl-CQF10eCkoFphJZJQkzzN6EkTD0AVF"


def test_trace_id_and_schema_version_in_data_and_meta(default_schema, sample_traces):
    trace = sample_traces["halueval-general-1"]
    task = trace_to_task(trace, default_schema)
    assert set(task) == {"data", "meta"}
    assert task["data"]["trace_id"] == "halueval-general-1"
    assert task["data"]["schema_version"] == "default@v1"
    assert task["meta"] == {"trace_id": "halueval-general-1", "schema_id": "default",
                            "schema_version": 1}
    assert task["data"]["answer"] == trace.output


def test_task_is_json_serializable(default_schema, sample_traces):
    for trace in sample_traces.values():
        task = trace_to_task(trace, default_schema)
        assert json.loads(json.dumps(task)) == task


def test_placeholders_for_empty_trace(default_schema):
    task = trace_to_task(Trace(trace_id="empty"), default_schema)
    data = task["data"]
    assert data["system_prompt"] == "(none)"
    assert data["messages"] == [{"role": "(none)", "content": EMPTY_CONVERSATION}]
    assert data["messages_count"] == 0
    assert data["tool_calls"] == [{"name": "(none)", "content": "no tool calls"}]
    assert data["documents"] == [{"title": "(none)", "content": "no retrieved documents"}]
    assert data["answer"] == ""
    assert data["metadata"] == {"trace id": "empty", "source": "native"}


def test_otel_sample_tool_result_attached(default_schema, sample_traces):
    trace = sample_traces[OTEL_ID]
    data = trace_to_task(trace, default_schema)["data"]
    assert data["tool_calls"] == [{
        "name": "get_weather [1234]",
        "content": 'arguments: {"location": "Paris"}\nresult: rainy, 57°F',
    }]
    assert data["messages_count"] == 3
    # a tool message is headed with the tool that answered; the call is in the message
    # that made it, its short arguments as the model wrote them
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool (get_weather)"]
    assert data["messages"][1]["content"].endswith(
        '\u2192 get_weather [1234]\n{"location": "Paris"}')
    assert data["messages"][2]["content"] == "rainy, 57°F"
    assert data["metadata"]["model"] == "gpt-4"
    assert data["metadata"]["model version"] == "gpt-4-0613"
    assert data["metadata"]["input tokens"] == "97"
    assert data["metadata"]["source"] == "otel-genai"
    # no placeholder when there is a conversation
    assert EMPTY_CONVERSATION not in json.dumps(data)


def test_explicit_tool_result_is_not_overwritten(default_schema):
    trace = Trace.model_validate({
        "trace_id": "t",
        "messages": [
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "name": "lookup", "arguments": "{\"q\": 1}", "result": "kept"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "from message"},
        ],
    })
    data = trace_to_task(trace, default_schema)["data"]
    assert data["tool_calls"] == [
        {"name": "lookup [c1]", "content": 'arguments: {"q": 1}\nresult: kept'}]
    # an assistant message with only tool calls shows the calls; the result is in the
    # tool message that answered, so not repeated in the call
    assert data["messages"][0] == {"role": "assistant",
                                   "content": '\u2192 lookup [c1]\n{"q": 1}'}
    assert data["messages"][1] == {"role": "tool (lookup)", "content": "from message"}


def test_screen_sections_and_code(default_schema):
    trace = Trace.model_validate({
        "trace_id": "code", "system_prompt": "Be brief.",
        "messages": [
            {"role": "user", "content": "Fix f:\n\n    def f(x):\n        return x"},
            {"role": "assistant", "tool_calls": [
                {"id": "c2", "name": "run", "arguments": {"x": 1}, "result": "ok"}]}],
        "output": "def f(x):\n    if x:\n        return 1\n    return 0",
        "metadata": {"model": "m-1", "latency_ms": 12}})
    data = trace_to_task(trace, default_schema)["data"]
    # a call nobody answered in a tool message carries its result inline
    assert data["messages"][1]["content"] == ('\u2192 run [c2]\n{"x": 1}'
                                              "\n\u2190 result:\nok")
    assert "metadata_text" in data and data["messages"][0]["content"].endswith("return x")
    assert data["sections"] == {"system_prompt": [1], "documents": [],
                                "answer_code": [1], "conversation_code": [1]}
    # the metadata as aligned lines, the trace id first
    lines = data["metadata_text"].splitlines()
    assert lines[0].split() == ["trace", "id", "code"]
    assert {line.index("  ") for line in lines if "  " in line} != set()
    width = len("latency ms")
    assert all(line[width:width + 2] == "  " for line in lines)
    # an answer in prose is not code; a trace without prompt or documents has none
    prose = trace_to_task(Trace(trace_id="p", output="Paris is the capital."),
                          default_schema)["data"]
    assert prose["sections"] == {"system_prompt": [], "documents": [], "answer_code": [],
                                 "conversation_code": []}


def test_documents_and_named_messages(default_schema):
    trace = Trace.model_validate({
        "trace_id": "rag",
        "system_prompt": "Be brief.",
        "messages": [{"role": "user", "name": "alice", "content": "Hi"}],
        "documents": [{"id": "d1", "content": "Doc one", "score": 0.5},
                      {"content": "Doc two"}],
        "output": "Hello.",
        "metadata": {"latency_ms": 0, "error": "timeout", "cost_usd": 0.25},
    })
    data = trace_to_task(trace, default_schema)["data"]
    assert data["system_prompt"] == "Be brief."
    assert data["messages"] == [{"role": "user (alice)", "content": "Hi"}]
    assert data["documents"] == [
        {"title": "document 1 (d1) score 0.5", "content": "Doc one"},
        {"title": "document 2", "content": "Doc two"},
    ]
    meta = data["metadata"]
    assert meta["error"] == "timeout"
    assert meta["latency ms"] == "0.0"  # zero is a value, not "missing"
    assert meta["cost usd"] == "0.25"
    assert all(isinstance(v, str) for v in meta.values())


def test_html_content_stays_literal_text(default_schema):
    hostile = '<script>alert("x")</script> & <b>bold</b>'
    trace = Trace.model_validate({
        "trace_id": "html",
        "system_prompt": hostile,
        "messages": [{"role": "user", "content": hostile}],
        "documents": [{"content": hostile}],
        "output": hostile,
    })
    data = trace_to_task(trace, default_schema)["data"]
    assert data["answer"] == hostile
    assert data["system_prompt"] == hostile
    assert data["messages"][0]["content"] == hostile
    assert data["documents"][0]["content"] == hostile
    assert "&lt;" not in json.dumps(data)


def test_html_sample_trace_is_unchanged(default_schema, sample_traces):
    trace = sample_traces["halueval-general-17"]  # an answer that is HTML source
    assert "</div>" in trace.output
    assert trace_to_task(trace, default_schema)["data"]["answer"] == trace.output


def test_tool_calls_result_by_id(sample_traces):
    calls = sample_traces[OTEL_ID].tool_calls()
    assert len(calls) == 1
    assert calls[0].result == "rainy, 57°F"
    assert calls[0].arguments == {"location": "Paris"}


def test_call_without_id_gets_no_orphan_result():
    trace = Trace.model_validate({
        "trace_id": "t",
        "messages": [
            {"role": "assistant", "tool_calls": [{"name": "search"}]},
            {"role": "tool", "content": "unrelated output"},
        ],
    })
    assert trace.tool_calls()[0].result is None


# --- context for reviewers: truncation and redaction ----------------------------------------

def test_long_text_is_cut_with_a_visible_marker(default_schema):
    from ls_llmtrace.ingest.convert import ReviewOptions

    long_doc = "x" * 5000
    trace = Trace.model_validate({"trace_id": "long", "output": "y" * 150,
                                  "documents": [{"content": long_doc}],
                                  "messages": [{"role": "user", "content": "short"}]})
    data = trace_to_task(trace, default_schema, ReviewOptions(max_chars=1000))["data"]
    doc = data["documents"][0]["content"]
    assert doc.startswith("x" * 1000) and "x" * 1001 not in doc
    assert "4,000 more characters cut: limit 1,000" in doc
    assert data["answer"] == "y" * 150 and data["messages"][0]["content"] == "short"
    assert data["trace_id"] == "long" and data["messages_count"] == 1


def test_limit_from_settings(default_schema, monkeypatch):
    monkeypatch.setenv("LS_LLMTRACE_MAX_CHARS", "200")
    data = trace_to_task(Trace(trace_id="t", output="z" * 300), default_schema)["data"]
    assert data["answer"].startswith("z" * 200) and "100 more characters cut" in data["answer"]


def test_redaction_before_label_studio(default_schema, monkeypatch):
    from ls_llmtrace.ingest.convert import ReviewOptions

    secret = ("Mail ana@example.com, call +1 415 555 2671 or (212) 555-0188; "
              "key sk-proj-A1b2C3d4E5f6G7h8I9j0 ticket ACME-991; order 20250822")
    trace = Trace.model_validate({
        "trace_id": "pii", "system_prompt": secret, "output": secret,
        "messages": [{"role": "user", "content": secret, "tool_calls": [
            {"name": "crm", "arguments": {"email": "ana@example.com"}, "result": secret}]}],
        "documents": [{"content": secret}],
        "metadata": {"extra": {}, "error": "auth failed for ana@example.com"}})
    options = ReviewOptions(redact=("email", "phone", "api_key"),
                            custom_patterns=(r"ACME-\d+",))
    data = trace_to_task(trace, default_schema, options)["data"]
    text = json.dumps(data)
    for leaked in ("ana@example.com", "415 555 2671", "555-0188", "sk-proj-", "ACME-991"):
        assert leaked not in text, leaked
    assert "[email]" in data["answer"] and "[phone]" in data["answer"]
    assert "[api_key]" in data["answer"] and "[redacted]" in data["answer"]
    assert "order 20250822" in data["answer"]  # plain numbers are not phone numbers
    assert data["metadata"]["error"] == "auth failed for [email]"
    # off by default; on through the settings
    assert "ana@example.com" in trace_to_task(trace, default_schema)["data"]["answer"]
    monkeypatch.setenv("LS_LLMTRACE_REDACT", "all")
    monkeypatch.setenv("LS_LLMTRACE_REDACT_PATTERNS", '["ACME-\\\\d+"]')
    answer = trace_to_task(trace, default_schema)["data"]["answer"]
    assert "ana@example.com" not in answer and "ACME-991" not in answer


def test_bad_redaction_settings_say_how_to_fix(default_schema, monkeypatch):
    import pytest

    from ls_llmtrace.errors import ConfigError

    monkeypatch.setenv("LS_LLMTRACE_REDACT", "ssn")
    with pytest.raises(ConfigError, match="unknown redaction 'ssn'"):
        trace_to_task(Trace(trace_id="t"), default_schema)
    monkeypatch.setenv("LS_LLMTRACE_REDACT", "")
    monkeypatch.setenv("LS_LLMTRACE_REDACT_PATTERNS", "ACME")
    with pytest.raises(ConfigError, match="JSON list"):
        trace_to_task(Trace(trace_id="t"), default_schema)


def test_long_one_line_json_arguments_are_indented_in_their_own_key_order(default_schema):
    args = json.dumps({"zeta": "z" * 60, "alpha": ["a" * 30, 2]})
    trace = Trace.model_validate({"trace_id": "t", "output": "ok", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f", "arguments": args}]}]})
    content = trace_to_task(trace, default_schema)["data"]["messages"][0]["content"]
    assert content.endswith(json.dumps(json.loads(args), indent=2))
    assert content.index('"zeta"') < content.index('"alpha"')
    # text that is not JSON, or already on several lines, stays as it was sent
    for kept in ("x" * 150, '{\n  "a": 1\n}' + " " * 120):
        trace = Trace.model_validate({"trace_id": "t", "output": "ok", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f", "arguments": kept}]}]})
        content = trace_to_task(trace, default_schema)["data"]["messages"][0]["content"]
        assert content.endswith("\n" + kept)
