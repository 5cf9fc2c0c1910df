"""The message-dialect layer: each provider's and framework's way of writing messages,
tool calls and tool results, read into the same messages; and the fixtures from the real
producers (tests/fixtures/<dialect>/generate.py) matched against their ground truth."""

from __future__ import annotations

import json

import pytest
from tests.support.groundtruth import _args, dialect_folders, match_folder, table

from ls_llmtrace.ingest.importers.dialects import (
    answer_text,
    read_messages,
    reading,
    transcript,
)

TOOL_RESULT = '{"temp_c": 18,  "sky": "sunny"}'  # own spacing: must come through unchanged


def _shape(messages):
    return [(m.role, m.content, [(c.id, c.name, c.arguments) for c in m.tool_calls],
             m.tool_call_id) for m in messages]


def test_anthropic_blocks_tool_use_tool_result_thinking() -> None:
    raw = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool", "signature": "x"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": TOOL_RESULT},
            {"type": "text", "text": "and tomorrow?"}]},
    ]
    with reading() as read:
        messages = read_messages(raw)
    assert _shape(messages) == [
        ("user", "Weather?", [], None),
        ("assistant", "Let me check.", [("toolu_1", "get_weather", {"city": "Paris"})], None),
        ("tool", TOOL_RESULT, [], "toolu_1"),
        ("user", "and tomorrow?", [], None),
    ]
    assert read.parts[("input", "anthropic")] == 2 and not read.unread


def test_gemini_contents_parts_function_call_and_response() -> None:
    request = {"contents": [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"function_call": {"name": "get_weather",
                                                      "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"temp_c": 18, "sky": "sunny"}}}]}],
        "system_instruction": {"parts": [{"text": "Be terse."}]}}
    messages = read_messages(request)
    assert _shape(messages) == [
        ("system", "Be terse.", [], None),
        ("user", "Weather?", [], None),
        ("assistant", "", [(None, "get_weather", {"city": "Paris"})], None),
        ("tool", '{"temp_c": 18, "sky": "sunny"}', [], None),  # the object's own key order
    ]
    assert messages[2].tool_calls[0].result == '{"temp_c": 18, "sky": "sunny"}'
    answer = read_messages({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Sunny", "thought": False}, {"text": " all day."}]}}]}, "assistant")
    assert _shape(answer) == [("assistant", "Sunny all day.", [], None)]
    assert _shape(read_messages({"contents": "Just a string"})) == [("user", "Just a string",
                                                                      [], None)]


def test_otel_genai_parts_and_pydantic_ai_tool_call_response_results() -> None:
    raw = [{"role": "user", "parts": [
        {"type": "tool_call_response", "id": "a", "name": "f", "result": TOOL_RESULT},
        {"type": "tool_call_response", "id": "b", "name": "g", "result": {"n": 1}},
        {"type": "tool_call_response", "id": "c", "name": "h", "result": "plain"}]}]
    assert _shape(read_messages(raw)) == [("tool", TOOL_RESULT, [], "a"),
                                          ("tool", '{"n": 1}', [], "b"),
                                          ("tool", "plain", [], "c")]


def test_openai_responses_and_agents_items() -> None:
    raw = {"instructions": "Be terse.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": TOOL_RESULT}]}
    assert _shape(read_messages(raw)) == [
        ("system", "Be terse.", [], None), ("user", "Weather?", [], None),
        ("assistant", "", [("c1", "get_weather", '{"city":"Paris"}')], None),
        ("tool", TOOL_RESULT, [], "c1")]


def test_vercel_ai_parts() -> None:
    raw = [{"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool-call", "toolCallId": "t1", "toolName": "get_weather",
         "input": {"city": "Paris"}}]},
        {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "t1",
                                      "toolName": "get_weather",
                                      "output": {"type": "text", "value": TOOL_RESULT}}]}]
    assert _shape(read_messages(raw)) == [
        ("assistant", "Checking.", [("t1", "get_weather", {"city": "Paris"})], None),
        ("tool", TOOL_RESULT, [], "t1")]


def test_langchain_types_serialized_and_tool_name_role() -> None:
    raw = [
        {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages",
                                                "SystemMessage"],
         "kwargs": {"content": "Be terse."}},
        {"type": "human", "content": "Weather?"},
        {"type": "ai", "content": "", "tool_calls": [{"name": "get_weather",
                                                      "args": {"city": "Paris"}, "id": "x"}]},
        {"role": "get_weather", "content": TOOL_RESULT},  # LangGraph JS: role = tool name
    ]
    assert _shape(read_messages(raw)) == [
        ("system", "Be terse.", [], None), ("user", "Weather?", [], None),
        ("assistant", "", [("x", "get_weather", {"city": "Paris"})], None),
        ("tool", TOOL_RESULT, [], None)]


def test_llamaindex_args_and_blocks() -> None:
    raw = {"args": [[{"role": "system", "blocks": [{"block_type": "text", "text": "Be terse."}]},
                     {"role": "user", "content": "Weather?"}]], "kwargs": {}}
    assert _shape(read_messages(raw)) == [("system", "Be terse.", [], None),
                                          ("user", "Weather?", [], None)]


def test_transcripts_python_reprs_and_none_answers() -> None:
    text = "system: Be terse.\nuser: Weather?\n  in Paris\nassistant: Sunny."
    assert _shape(transcript(text) or []) == [("system", "Be terse.", [], None),
                                              ("user", "Weather?\n  in Paris", [], None),
                                              ("assistant", "Sunny.", [], None)]
    assert transcript("user: just one turn") is None
    repr_text = str([{"role": "system", "content": "Be terse."},
                     {"role": "user", "content": "It's  cold?"}])
    with reading() as read:
        messages = read_messages(repr_text)
    assert _shape(messages) == [("system", "Be terse.", [], None),
                                ("user", "It's  cold?", [], None)]
    assert read.parts[("input", "python-repr")] == 1
    assert answer_text("None") == ""
    assert answer_text(str({"role": "assistant", "content": "Sunny."})) == "Sunny."
    assert answer_text("  keep  \n whitespace ") == "  keep  \n whitespace "


def test_an_unreadable_message_is_kept_as_raw_text_and_counted() -> None:
    raw = [{"role": "user", "content": "hi"}, {"role": "narrator", "content": "odd"}, 42]
    with reading() as read:
        messages = read_messages(raw)
    assert [m.role for m in messages] == ["user", "user", "user"]
    assert json.loads(messages[1].content) == {"role": "narrator", "content": "odd"}
    assert messages[2].content == "42"
    assert len(read.unread) == 2
    assert any("UNREAD" in line for line in read.lines())


FOLDERS = dialect_folders()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_fixture_from_the_real_producer_matches_its_ground_truth(folder) -> None:
    match = match_folder(folder)
    assert match.fields >= 9, "the ground truth checks too little"
    assert match.misses == [], "\n".join(match.misses)
    assert match.generations_equal == match.generations


def test_match_table_covers_every_dialect_folder() -> None:
    assert len(FOLDERS) >= 4
    rendered = table([match_folder(f) for f in FOLDERS])
    assert all(f.name in rendered for f in FOLDERS)


def _vercel_spans() -> list[dict]:
    """The Vercel AI fixture's spans (tests/fixtures/vercel-ai), attributes as a flat map."""
    from tests.support.groundtruth import FIXTURES

    line = (FIXTURES / "vercel-ai" / "trace.otlp.jsonl").read_text(encoding="utf-8")
    request = json.loads(line.splitlines()[0])
    return [{"name": s["name"], "attrs": {a["key"]: next(iter(a["value"].values()))
                                          for a in s.get("attributes", []) if a["value"]}}
            for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def test_a_flat_map_of_only_vercel_ai_keys_imports(tmp_path) -> None:
    from ls_llmtrace.ingest.importers import read_any
    from ls_llmtrace.models import Trace

    call = next(s["attrs"] for s in _vercel_spans() if s["name"] == "ai.generateText.doGenerate"
                and "ai.response.text" in s["attrs"])
    path = tmp_path / "vercel.jsonl"
    path.write_text(json.dumps({k: v for k, v in call.items() if k.startswith("ai.")}) + "\n",
                    encoding="utf-8")
    [trace] = list(read_any(path))
    assert isinstance(trace, Trace), trace
    assert trace.output == call["ai.response.text"]
    assert trace.system_prompt.startswith("You are a terse weather assistant.")
    assert trace.metadata.model == call["ai.model.id"]
    assert trace.metadata.prompt_name == call["ai.telemetry.functionId"]
    assert trace.metadata.extra["user id"] == call["ai.telemetry.metadata.user_id"]


def test_vercel_tool_calls_arriving_through_langfuse(tmp_path) -> None:
    """Langfuse keeps a Vercel generation's ``ai.response.toolCalls`` (``{toolCallId,
    toolName, input}``) as its output; the export below is built from the fixture's spans
    the way Langfuse maps them (input: the call's messages; output: text or tool calls)."""
    from ls_llmtrace.ingest.importers import read_any
    from ls_llmtrace.models import Trace

    spans = _vercel_spans()
    calls = [s["attrs"] for s in spans if s["name"] == "ai.generateText.doGenerate"
             and s["attrs"].get("ai.telemetry.functionId") == "weather-tools"]
    tool = next(s["attrs"] for s in spans if s["name"] == "ai.toolCall")
    observations = [
        {"id": f"g{n}", "type": "GENERATION", "name": "ai.generateText.doGenerate",
         "startTime": f"2026-01-01T00:00:0{2 * n}Z", "endTime": f"2026-01-01T00:00:0{2 * n + 1}Z",
         "model": a["ai.model.id"], "input": json.loads(a["ai.prompt.messages"]),
         "output": json.loads(a["ai.response.toolCalls"]) if "ai.response.toolCalls" in a
         else a["ai.response.text"]} for n, a in enumerate(calls)]
    observations.append({"id": "t", "type": "TOOL", "name": tool["ai.toolCall.name"],
                         "startTime": "2026-01-01T00:00:01Z", "endTime": "2026-01-01T00:00:02Z",
                         "input": json.loads(tool["ai.toolCall.args"]),
                         "output": tool["ai.toolCall.result"]})
    path = tmp_path / "langfuse.json"
    path.write_text(json.dumps({"trace": {"id": "vercel-1", "timestamp": "2026-01-01T00:00:00Z"},
                                "observations": observations}), encoding="utf-8")
    first = json.loads(calls[0]["ai.response.toolCalls"])[0]
    with reading() as read:
        out = read_messages(json.loads(calls[0]["ai.response.toolCalls"]), "assistant")
    assert _shape(out) == [("assistant", "", [(first["toolCallId"], first["toolName"],
                                               first["input"])], None)]
    assert read.parts[("output", "vercel.ai")] == 1 and not read.unread
    [trace] = [t for t in read_any(path) if isinstance(t, Trace)]
    assert trace.output == calls[-1]["ai.response.text"]
    [call] = trace.tool_calls()
    assert (call.id, call.name, _args(call.arguments)) == (
        first["toolCallId"], first["toolName"], json.loads(first["input"]))
    assert call.result == json.loads(tool["ai.toolCall.result"])  # the tool's own string


def test_langchain_generations_output() -> None:
    ai = {"lc": 1, "type": "constructor", "id": ["langchain_core", "messages", "AIMessage"],
          "kwargs": {"content": "", "tool_calls": [{"name": "get_weather", "id": "call_1",
                                                    "args": {"city": "Paris"}}]}}
    output = {"generations": [[{"text": "", "message": ai}], [{"text": "Sunny."}]],
              "llmOutput": {}}
    with reading() as read:
        messages = read_messages(output, "assistant")
    assert _shape(messages) == [("assistant", "", [("call_1", "get_weather", {"city": "Paris"})],
                                 None), ("assistant", "Sunny.", [], None)]
    assert read.parts[("output", "langchain")] >= 1 and not read.unread
