"""LangSmith runs whose inputs keep the system prompt beside the messages.

The shapes are what LangSmith's wrappers and LangChain record as a run's ``inputs`` (the
call's keyword arguments): the OpenAI Responses API (``input`` + ``instructions``), the
Anthropic Messages API (``messages`` + ``system``, a string or text blocks), and a
LangChain LLM run's ``prompts`` (the chat rendered as ``System: ...\\nHuman: ...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.models import Trace


def _run(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {"id": "r-1", "trace_id": "r-1", "run_type": "llm", "name": "ChatOpenAI",
            "dotted_order": "1", "inputs": inputs, "outputs": outputs,
            "start_time": "2025-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:01Z"}


def _read(tmp_path: Path, run: dict[str, Any]) -> Trace:
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(run) + "\n", encoding="utf-8")
    items = list(read_any(path, "langsmith"))
    assert all(not isinstance(item, list) for item in items), items
    [trace] = items
    assert isinstance(trace, Trace)
    return trace


RESPONSE = {"object": "response", "model": "gpt-4.1-mini", "output": [
    {"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": "Paris.", "annotations": []}]}]}
ANTHROPIC = {"type": "message", "role": "assistant", "stop_reason": "end_turn",
             "content": [{"type": "text", "text": "Paris."}]}


@pytest.mark.parametrize("input_value", [
    "What is the capital of France?",
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"type": "message", "role": "user",
      "content": [{"type": "input_text", "text": "What is the capital of France?"}]}],
])
def test_responses_instructions_are_the_system_prompt(tmp_path: Path, input_value: Any) -> None:
    trace = _read(tmp_path, _run({"model": "gpt-4.1-mini", "input": input_value,
                                  "instructions": "Answer in one word.\n"}, RESPONSE))
    assert trace.system_prompt == "Answer in one word.\n"
    assert [(m.role, m.content) for m in trace.messages] == \
        [("user", "What is the capital of France?")]
    assert trace.output == "Paris."


@pytest.mark.parametrize("system", [
    "Answer in one word.",
    [{"type": "text", "text": "Answer in one word.", "cache_control": {"type": "ephemeral"}}],
])
def test_anthropic_system_beside_the_messages(tmp_path: Path, system: Any) -> None:
    trace = _read(tmp_path, _run({"model": "claude-sonnet-4-5", "max_tokens": 64,
                                  "system": system, "messages": [
                                      {"role": "user", "content": "Capital of France?"}]},
                                 ANTHROPIC))
    assert trace.system_prompt == "Answer in one word."
    assert [(m.role, m.content) for m in trace.messages] == [("user", "Capital of France?")]
    assert trace.output == "Paris."


def test_a_system_message_already_in_the_list_is_not_doubled(tmp_path: Path) -> None:
    trace = _read(tmp_path, _run({"system": "Answer in one word.", "messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"}]}, ANTHROPIC))
    assert trace.system_prompt == "Answer in one word."
    assert [m.role for m in trace.messages] == ["user"]


def test_langchain_llm_prompts_rendered_as_a_transcript(tmp_path: Path) -> None:
    trace = _read(tmp_path, _run(
        {"prompts": ["System: Answer in one word.\nHuman: Capital of France?"]},
        {"generations": [[{"text": "Paris.", "generation_info": None}]]}))
    assert trace.system_prompt == "Answer in one word."
    assert [(m.role, m.content) for m in trace.messages] == [("user", "Capital of France?")]
    assert trace.output == "Paris."


def test_plain_prompts_stay_user_messages(tmp_path: Path) -> None:
    trace = _read(tmp_path, _run({"prompts": ["Capital of France?"]},
                                 {"generations": [[{"text": "Paris."}]]}))
    assert trace.system_prompt == ""
    assert [(m.role, m.content) for m in trace.messages] == [("user", "Capital of France?")]
