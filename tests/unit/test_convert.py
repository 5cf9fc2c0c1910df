"""convert.py: Trace -> Label Studio task."""

from __future__ import annotations

import json

from ls_llmtrace.convert import EMPTY_CONVERSATION, trace_to_task
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
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool"]
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
    # an assistant message with only tool calls says what it called
    assert data["messages"][0] == {"role": "assistant", "content": "(calls lookup)"}


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
