"""Frameworks none of the fixtures come from, in the shapes their instrumentation writes.

Each case is built from the producer's documented or source-visible output (no fixture of
a real run exists for them yet): OpenLLMetry/Traceloop's indexed ``gen_ai.prompt.N.*``
attributes and tool spans, Semantic Kernel's ``gen_ai.content.prompt`` / ``completion``
span events, Strands Agents' events (Bedrock content blocks as JSON, and the latest
conventions' details event on the span), Bedrock Converse request and response bodies,
and Logfire's OpenAI spans (``request_data`` / ``response_data``, and the GenAI
attributes with Responses API parts passed through).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ls_llmtrace.ingest.importers.dialects import read_messages, reading
from ls_llmtrace.ingest.importers.spans import SpanView, build_trace
from ls_llmtrace.models import Trace

T0 = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def _span(n: int, attrs: dict[str, Any], parent: int | None = 0, name: str = "",
          events: list[dict[str, Any]] | None = None) -> SpanView:
    return SpanView(trace_id="t" * 32, span_id=f"{n:016x}",
                    parent_span_id=f"{parent:016x}" if parent is not None else None,
                    name=name, start=T0 + timedelta(seconds=n), end=T0 + timedelta(seconds=n + 1),
                    attributes=attrs, events=[{"name": e["name"], "time": None,
                                               "attributes": e["attributes"]}
                                              for e in events or []])


def _trace(*spans: SpanView) -> Trace:
    root = _span(0, {}, None, "app")
    root.end = T0 + timedelta(seconds=60)
    return build_trace("t" * 32, [root, *spans], "otlp")


def _turns(trace: Trace) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in trace.messages]


# --- OpenLLMetry (Traceloop) ---------------------------------------------------------------

def test_openllmetry_indexed_prompt_with_a_tool_round_trip() -> None:
    trace = _trace(_span(1, {
        "llm.request.type": "chat", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "You track orders.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Where is order 42?",
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.tool_calls.0.id": "call_1",
        "gen_ai.prompt.2.tool_calls.0.name": "lookup_order",
        "gen_ai.prompt.2.tool_calls.0.arguments": '{"order_id": 42}',
        "gen_ai.prompt.3.role": "tool", "gen_ai.prompt.3.content": "shipped",
        "gen_ai.prompt.3.tool_call_id": "call_1",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Order 42 has shipped.",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 8,
    }, name="openai.chat"))
    assert trace.system_prompt == "You track orders."
    assert _turns(trace) == [("user", "Where is order 42?"), ("assistant", ""),
                             ("tool", "shipped")]
    [call] = trace.messages[1].tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "lookup_order", '{"order_id": 42}')
    assert trace.messages[2].tool_call_id == "call_1"
    assert trace.output == "Order 42 has shipped."
    assert (trace.metadata.model, trace.metadata.model_version) == \
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (trace.metadata.input_tokens, trace.metadata.output_tokens) == (50, 8)


def test_openllmetry_content_parts_written_as_json() -> None:
    parts = [{"type": "text", "text": "What is in this picture?"},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    trace = _trace(_span(1, {
        "llm.request.type": "chat", "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": json.dumps(parts),
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "A cat.",
    }))
    assert _turns(trace) == [("user", "What is in this picture?")]
    assert trace.output == "A cat."


def test_openllmetry_tool_span_gives_the_call_its_result() -> None:
    trace = _trace(
        _span(1, {"llm.request.type": "chat", "gen_ai.prompt.0.role": "user",
                  "gen_ai.prompt.0.content": "Where is order 42?",
                  "gen_ai.completion.0.role": "assistant",
                  "gen_ai.completion.0.tool_calls.0.id": "call_1",
                  "gen_ai.completion.0.tool_calls.0.name": "lookup_order",
                  "gen_ai.completion.0.tool_calls.0.arguments": '{"order_id": 42}'}),
        _span(2, {"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup_order",
                  "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"order_id": 42}}),
                  "traceloop.entity.output": json.dumps("shipped on Monday")},
              name="lookup_order.tool"),
        _span(3, {"traceloop.span.kind": "workflow", "traceloop.entity.name": "support"},
              name="support.workflow"))
    [call] = [c for m in trace.messages for c in m.tool_calls]
    assert (call.name, call.result) == ("lookup_order", "shipped on Monday")
    kinds = {s.name: s.kind.value for s in trace.spans}
    assert kinds["lookup_order.tool"] == "tool" and kinds["support.workflow"] == "chain"


def test_one_call_recorded_by_two_instrumentations_counts_once() -> None:
    """The Anthropic SDK's own span and OpenLLMetry's, siblings with the same response id."""
    sdk = {"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
           "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.response.id": "msg_1",
           "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 6}
    trace = _trace(
        _span(1, sdk, name="anthropic.messages.create"),
        _span(2, {**sdk, "llm.request.type": "chat", "gen_ai.prompt.0.role": "user",
                  "gen_ai.prompt.0.content": "Hello?", "gen_ai.completion.0.role": "assistant",
                  "gen_ai.completion.0.content": "Hi."}, name="anthropic.chat"),
        _span(3, {**sdk, "gen_ai.response.id": "msg_2"}, name="anthropic.messages.create"))
    # msg_1 is counted once (the span with messages is kept); msg_2 is another call
    assert (trace.metadata.input_tokens, trace.metadata.output_tokens) == (60, 12)
    assert _turns(trace) == [("user", "Hello?")] and trace.output == "Hi."
    kinds = [(s.name, s.kind.value) for s in trace.spans if s.name.startswith("anthropic")]
    assert kinds == [("anthropic.messages.create", "other"), ("anthropic.chat", "llm"),
                     ("anthropic.messages.create", "llm")]


# --- Semantic Kernel ----------------------------------------------------------------------

def test_semantic_kernel_prompt_and_completion_events() -> None:
    prompt = [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": "Where is order 42?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "call_1", "type": "function",
                   "function": {"name": "orders-lookup", "arguments": '{"order_id": 42}'}}]},
              {"role": "tool", "content": "shipped", "tool_call_id": "call_1"}]
    trace = _trace(_span(1, {
        "gen_ai.operation.name": "chat.completions", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.response.prompt_tokens": 20,
        "gen_ai.response.completion_tokens": 5,
    }, name="chat.completions gpt-4o", events=[
        {"name": "gen_ai.content.prompt", "attributes": {"gen_ai.prompt": json.dumps(prompt)}},
        {"name": "gen_ai.content.completion", "attributes": {"gen_ai.completion": json.dumps(
            [{"role": "assistant", "content": "It has shipped."}])}}]))
    assert trace.system_prompt == "Be brief."
    assert _turns(trace) == [("user", "Where is order 42?"), ("assistant", ""),
                             ("tool", "shipped")]
    assert trace.messages[1].tool_calls[0].name == "orders-lookup"
    assert trace.output == "It has shipped."
    assert (trace.metadata.model, trace.metadata.input_tokens, trace.metadata.output_tokens) \
        == ("gpt-4o", 20, 5)


# --- Strands Agents -----------------------------------------------------------------------

def test_strands_events_with_bedrock_blocks_as_json() -> None:
    events = [
        {"name": "gen_ai.system.message", "attributes": {
            "content": json.dumps([{"text": "You track orders."}])}},
        {"name": "gen_ai.user.message", "attributes": {
            "content": json.dumps([{"text": "Where is order 42?"}])}},
        {"name": "gen_ai.assistant.message", "attributes": {"content": json.dumps([
            {"toolUse": {"toolUseId": "tu_1", "name": "lookup_order",
                         "input": {"order_id": 42}}}])}},
        {"name": "gen_ai.tool.message", "attributes": {"content": json.dumps([
            {"toolResult": {"toolUseId": "tu_1", "status": "success",
                            "content": [{"text": "shipped"}]}}]), "id": "tu_1"}},
        {"name": "gen_ai.choice", "attributes": {"finish_reason": "end_turn",
                                                 "message": json.dumps([{"text": "Shipped."}])}},
    ]
    trace = _trace(_span(1, {"gen_ai.operation.name": "chat",
                             "gen_ai.request.model": "us.anthropic.claude-sonnet-4"},
                         name="chat", events=events))
    assert trace.system_prompt == "You track orders."
    assert _turns(trace) == [("user", "Where is order 42?"), ("assistant", ""),
                             ("tool", "shipped")]
    [call] = trace.messages[1].tool_calls
    assert (call.id, call.name, call.arguments) == ("tu_1", "lookup_order", {"order_id": 42})
    assert trace.messages[2].tool_call_id == "tu_1"
    assert trace.output == "Shipped."


def test_strands_latest_conventions_details_event_on_the_span() -> None:
    details = {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "Where is order 42?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "Shipped."}], "finish_reason": "end_turn"}]),
        "gen_ai.system_instructions": json.dumps([{"type": "text",
                                                   "content": "You track orders."}]),
    }
    trace = _trace(_span(1, {"gen_ai.operation.name": "chat"}, name="chat", events=[
        {"name": "gen_ai.client.inference.operation.details", "attributes": details}]))
    assert trace.system_prompt == "You track orders."
    assert _turns(trace) == [("user", "Where is order 42?")]
    assert trace.output == "Shipped."


# --- Bedrock Converse ---------------------------------------------------------------------

def test_bedrock_converse_request_and_response() -> None:
    request = {"modelId": "anthropic.claude-3-haiku", "system": [{"text": "Be brief."}],
               "messages": [
                   {"role": "user", "content": [{"text": "Where is order 42?"}]},
                   {"role": "assistant", "content": [
                       {"text": "Let me check."},
                       {"toolUse": {"toolUseId": "tu_1", "name": "lookup_order",
                                    "input": {"order_id": 42}}}]},
                   {"role": "user", "content": [{"toolResult": {
                       "toolUseId": "tu_1", "status": "success",
                       "content": [{"json": {"status": "shipped"}}]}}]}],
               "inferenceConfig": {"maxTokens": 256}}
    response = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "The tool said shipped."}}},
        {"text": "It has shipped."}]}}, "stopReason": "end_turn",
        "usage": {"inputTokens": 30, "outputTokens": 6, "totalTokens": 36}}
    with reading() as read:
        inputs = read_messages(request)
        outputs = read_messages(response, "assistant")
    assert [(m.role, m.content) for m in inputs] == [
        ("system", "Be brief."), ("user", "Where is order 42?"),
        ("assistant", "Let me check."), ("tool", '{"status": "shipped"}')]
    [call] = inputs[2].tool_calls
    assert (call.id, call.name, call.arguments) == ("tu_1", "lookup_order", {"order_id": 42})
    assert inputs[3].tool_call_id == "tu_1"
    assert [(m.role, m.content) for m in outputs] == [("assistant", "It has shipped.")]
    assert not read.unread
    assert read.parts[("output", "bedrock.converse")] >= 1


# --- Logfire ------------------------------------------------------------------------------

def test_logfire_request_and_response_data() -> None:
    request = {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "Hi"}]}
    response = {"message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    trace = _trace(_span(1, {"request_data": json.dumps(request),
                             "response_data": json.dumps(response),
                             "gen_ai.request.model": "gpt-4o", "gen_ai.system": "openai"},
                         name="Chat Completion with 'gpt-4o'"))
    assert trace.system_prompt == "Be brief."
    assert _turns(trace) == [("user", "Hi")]
    assert trace.output == "Hello!"


def test_logfire_responses_parts_passed_through() -> None:
    inputs = [{"role": "developer", "parts": [{"type": "input_text", "text": "Be brief."}]},
              {"role": "user", "parts": [{"type": "input_text", "text": "Hi"}]}]
    with reading() as read:
        messages = read_messages(json.dumps(inputs))
    assert [(m.role, m.content) for m in messages] == [("developer", "Be brief."),
                                                       ("user", "Hi")]
    assert not read.unread
