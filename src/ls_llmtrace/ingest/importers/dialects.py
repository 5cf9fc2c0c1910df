"""Chat messages in every dialect real providers and frameworks write, read in one place.

Every importer (OTLP, Langfuse, LangSmith, native) hands its message lists here. A
dialect is recognized per message from its shape:

- ``openai.chat``: ``{role, content, tool_calls[{id, function{name, arguments}}], tool_call_id}``;
- ``openai.responses``: Responses API / Agents SDK items (``message`` with
  ``input_text``/``output_text`` parts, ``function_call``, ``function_call_output``, ``reasoning``);
- ``anthropic``: content blocks ``text``, ``tool_use``, ``tool_result``, ``thinking``;
- ``gemini``: ``{role: user|model, parts[{text}, {function_call}, {function_response}]}``,
  a ``candidates`` response, ``contents`` as a string;
- ``otel.genai``: ``{role, parts[{type: text|tool_call|tool_call_response|reasoning, ...}]}``
  (pydantic-ai's ``tool_call_response`` parts carry ``result``);
- ``vercel.ai``: content parts ``tool-call`` / ``tool-result`` (``toolCallId``, ``toolName``);
- ``langchain``: ``type`` human/ai/system/tool, serialized ``{"lc": 1, "kwargs": ...}``, and a
  tool message whose role is the tool's name;
- ``llamaindex``: ``blocks[{block_type: text}]`` and ``{"args": [...]}`` inputs;
- ``bedrock.converse``: blocks ``{text}``, ``{toolUse}``, ``{toolResult}``, ``{reasoningContent}``
  (Bedrock's Converse API, Strands Agents) and a ``{output: {message}}`` response;
- ``transcript``: role-prefixed text (``"system: ...\\nuser: ..."``, agno/autogen);
- ``python-repr``: a Python ``repr`` of a message list (what ``str(messages)`` writes).

Text is kept exactly (no stripping); tool results that are strings stay the same string,
objects are written as JSON in their own key order. A message no dialect reads is kept as
raw text (never dropped) and counted: the current :class:`Reading` (a context variable the
importers open per trace) records which dialect each part was read as and what was not.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ls_llmtrace.models import Message, ToolCall

ROLES = {
    "system": "system", "developer": "developer", "user": "user", "human": "user",
    "assistant": "assistant", "ai": "assistant", "model": "assistant", "bot": "assistant",
    "chatbot": "assistant", "tool": "tool", "function": "tool", "ipython": "tool",
}
# LangChain message classes (serialized ``id`` paths and ``type`` values) -> roles
_LC_TYPES = {
    "human": "user", "humanmessage": "user", "humanmessagechunk": "user",
    "ai": "assistant", "aimessage": "assistant", "aimessagechunk": "assistant",
    "system": "system", "systemmessage": "system", "systemmessagechunk": "system",
    "tool": "tool", "toolmessage": "tool", "toolmessagechunk": "tool",
    "function": "tool", "functionmessage": "tool", "chat": None, "chatmessage": None,
}
_TRANSCRIPT = re.compile(r"^(system|user|assistant|human|ai|tool)[ \t]*:[ \t]?",
                         re.IGNORECASE | re.MULTILINE)
_MAX_REPR = 1_000_000  # longest Python repr we try to read (ast is not streaming)


# --- what was read how -----------------------------------------------------------------

class Reading:
    """Per trace: how many messages of each part were read as which dialect, and what
    was kept as raw text because no dialect could read it."""

    __slots__ = ("parts", "unread")

    def __init__(self) -> None:
        self.parts: Counter[tuple[str, str]] = Counter()
        self.unread: list[tuple[str, str]] = []

    def note(self, part: str, dialect: str) -> None:
        key = (part, dialect)
        self.parts[key] = self.parts.get(key, 0) + 1

    def merge(self, other: Reading) -> None:
        self.parts.update(other.parts)
        self.unread.extend(other.unread)

    def lines(self) -> list[str]:
        """Human-readable lines for ``import --explain``."""
        out = [f"{part}: {count} read as {dialect}"
               for (part, dialect), count in sorted(self.parts.items())]
        out += [f"{part}: UNREAD, kept as raw text: {snippet}" for part, snippet in self.unread]
        return out


_current: ContextVar[Reading | None] = ContextVar("ls_llmtrace_reading", default=None)


class _Block:
    """The ``with`` block of :func:`reading` (a class: a generator-based context manager
    costs several times more, and importers open one per span)."""

    __slots__ = ("read", "token")

    def __init__(self) -> None:
        self.read = Reading()

    def __enter__(self) -> Reading:
        self.token = _current.set(self.read)
        return self.read

    def __exit__(self, *exc: object) -> None:
        _current.reset(self.token)


def reading() -> _Block:
    """Collect what the dialect layer reads inside the ``with`` block into a fresh
    Reading (``with reading() as read: ...``)."""
    return _Block()


def _note(part: str, dialect: str) -> None:
    current = _current.get()
    if current is not None:
        key = (part, dialect)
        current.parts[key] = current.parts.get(key, 0) + 1


def _unread(part: str, raw: Any) -> str:
    text = raw if isinstance(raw, str) else _dumps(raw)
    current = _current.get()
    if current is not None:
        current.unread.append((part, text[:200]))
    return text


# --- values ----------------------------------------------------------------------------

def _dumps(value: Any) -> str:
    """JSON text of a value in its own key order (never sorted, unicode kept)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


# json.loads checks its argument, matches whitespace with regexes and passes through two
# Python frames before its C scanner runs; jsonish calls the scanner itself: its text is
# stripped and starts with a bracket or a quote, so those steps have nothing to do. The
# scanner signals a missing value with StopIteration (json.loads turns it into an error).
_scan_json: Callable[[str, int], tuple[Any, int]] = (
    json.JSONDecoder().scan_once)  # type: ignore[attr-defined]  # set in __init__, not stubbed


def jsonish(value: Any, depth: int = 3) -> Any:
    """Parse a string that holds JSON (possibly JSON of a JSON string); else return it."""
    while depth and isinstance(value, str):
        text = value.strip()
        if not text or text[0] not in '[{"':
            return value
        try:
            parsed, end = _scan_json(text, 0)
        except (ValueError, StopIteration, RecursionError):
            return value
        if end != len(text):  # more after the value: not JSON
            return value
        value = parsed
        depth -= 1
    return value


def python_literal(value: Any) -> Any:
    """A Python ``repr`` of a dict or list (``[{'role': 'user', ...}]``) as the value; else
    the input unchanged. Only literals are evaluated (:func:`ast.literal_eval`)."""
    if not isinstance(value, str) or len(value) > _MAX_REPR:
        return value
    text = value.strip()
    if len(text) < 2 or text[0] not in "[{" or "'" not in text:
        return value
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    return parsed if isinstance(parsed, dict | list) else value


def decode(value: Any) -> Any:
    """JSON in a string, else a Python repr in a string, else the value itself."""
    parsed = jsonish(value)
    if isinstance(parsed, str):
        return python_literal(parsed)
    return parsed


_TEXT_TYPES = ("text", "output_text", "input_text", "summary_text", None)
_SILENT_TYPES = ("tool_call", "tool_call_response", "function_call", "function_call_output",
                 "tool_use", "tool_result", "tool-call", "tool-result", "thinking",
                 "redacted_thinking", "reasoning", "image", "image_url", "input_image",
                 "input_audio", "audio", "file", "blob", "uri", "document", "input_file",
                 "refusal")


def _part_text(part: Any) -> str | None:
    """The text of one content part in any dialect; "" for parts carried elsewhere
    (tool calls, reasoning, media); None when it is not a part we know."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    kind = part.get("type", part.get("block_type"))
    if kind in _TEXT_TYPES:
        for key in ("text", "content"):
            if isinstance(part.get(key), str):
                return str(part[key])
        if kind is None:
            return None
        return ""
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return str(part["refusal"])
    if kind in _SILENT_TYPES:
        return ""
    return None


def as_text(value: Any) -> str:
    """Readable text of a content value: strings as they are, text parts joined, anything
    else as JSON in its own key order."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [_part_text(p) for p in value]
        if all(t is not None for t in texts):
            return "".join(t for t in texts if t)
    if isinstance(value, dict):
        text = _part_text(value)
        if text is not None:
            return text
    return _dumps(value)


def result_text(value: Any) -> str:
    """A tool result as text: a string exactly as sent, parts as text, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text"
                                                 for p in value):
        return as_text(value)
    return "" if value is None else _dumps(value)


def answer_text(value: Any) -> str:
    """A final answer as text: ``"None"`` (Python's None, printed) is no answer; a Python
    or JSON message dict printed as text gives its content."""
    text = as_text(value)
    if text == "None":
        return ""
    stripped = text.strip()
    if stripped.startswith("{") and ("'content'" in stripped or '"content"' in stripped):
        parsed = decode(stripped)
        if isinstance(parsed, dict) and isinstance(parsed.get("content"), str | list):
            return as_text(parsed["content"])
    return text


# --- one message -------------------------------------------------------------------------

def _call(raw: dict[str, Any], dialect_args: str = "arguments") -> ToolCall | None:
    function = raw["function"] if isinstance(raw.get("function"), dict) else {}
    name = raw.get("name") or function.get("name") or raw.get("toolName")
    if not name or not isinstance(name, str | int | float):
        return None
    arguments = raw.get(dialect_args)
    if arguments is None:
        for key in ("arguments", "args", "input", "parameters"):
            if key in function:
                arguments = function[key]
                break
            if key in raw:
                arguments = raw[key]
                break
    call_id = (raw.get("call_id") or raw.get("id") or raw.get("tool_call_id")
               or raw.get("toolCallId") or raw.get("tool_use_id"))
    return ToolCall(id=str(call_id) if call_id is not None else None, name=str(name),
                    arguments=arguments)


_STR_INT = (str, int)  # a tuple: ``str | int`` builds a union object at every call


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, _STR_INT) and not isinstance(value, bool) \
        and str(value) else None


def _tool_message(content: str, call_id: Any, name: Any = None) -> Message:
    return Message(role="tool", content=content, tool_call_id=_str(call_id), name=_str(name))


def _is_tool_definition(raw: dict[str, Any]) -> bool:
    """LangChain puts tool *definitions* into the message list as `tool` messages."""
    content = raw.get("content")
    return (raw.get("role") == "tool" and isinstance(content, dict)
            and content.get("type") == "function" and isinstance(content.get("function"), dict)
            and not raw.get("tool_call_id"))


def _blocks(role: str, blocks: list[Any], base: dict[str, Any]) -> tuple[list[Message], str]:
    """A content list of typed blocks (Anthropic, Vercel AI, OpenAI parts, LlamaIndex):
    text, tool calls and tool results split into messages."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    dialect = "openai.chat"
    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, dict):
            texts.append(_dumps(block))
            continue
        kind = block.get("type", block.get("block_type"))
        if kind == "tool_use":
            dialect = "anthropic"
            call = _call(block, "input")
            if call:
                calls.append(call)
        elif kind == "tool_result":
            dialect = "anthropic"
            results.append(_tool_message(result_text(block.get("content")),
                                         block.get("tool_use_id")))
        elif kind in ("thinking", "redacted_thinking"):
            dialect = "anthropic"
        elif kind == "tool-call":
            dialect = "vercel.ai"
            call = _call(block, "input" if "input" in block else "args")
            if call:
                calls.append(call)
        elif kind == "tool-result":
            dialect = "vercel.ai"
            output = block.get("output", block.get("result"))
            if isinstance(output, dict) and "value" in output and "type" in output:
                output = output["value"]
            results.append(_tool_message(result_text(output), block.get("toolCallId"),
                                         block.get("toolName")))
        elif kind in ("function_call",):
            dialect = "openai.responses"
            call = _call(block)
            if call:
                calls.append(call)
        elif "block_type" in block:
            dialect = "llamaindex"
            texts.append(_part_text(block) or "")
        elif kind is None and isinstance(block.get("toolUse"), dict):
            dialect = "bedrock.converse"
            use = block["toolUse"]
            call = _call({"id": use.get("toolUseId"), "name": use.get("name"),
                          "input": use.get("input")}, "input")
            if call:
                calls.append(call)
        elif kind is None and isinstance(block.get("toolResult"), dict):
            dialect = "bedrock.converse"
            result = block["toolResult"]
            results.append(_tool_message(_converse_result(result.get("content")),
                                         result.get("toolUseId")))
        elif kind is None and "reasoningContent" in block:
            dialect = "bedrock.converse"  # the model's reasoning, not its answer
        else:
            text = _part_text(block)
            if text is None:
                text = _unread(f"{role} content part", block)
            elif kind in ("input_text", "output_text"):
                dialect = "openai.responses"
            texts.append(text)
    content = "".join(texts)
    if results and not content and not calls:
        return results, dialect
    main = Message(role=role, content=content, tool_calls=calls,
                   name=_str(base.get("name")), tool_call_id=_str(base.get("tool_call_id")))
    # tool results come first in a turn (Anthropic requires it), then the text
    return ([*results, main] if role == "user" else [main, *results]), dialect


def _converse_result(content: Any) -> str:
    """A Bedrock Converse ``toolResult`` content (``[{text}]`` or ``[{json}]`` blocks)."""
    if isinstance(content, list):
        texts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif isinstance(block, dict) and "json" in block:
                texts.append(result_text(block["json"]))
            else:
                texts.append(result_text(block))
        return "".join(texts)
    return result_text(content)


def _gemini_parts(role: str, parts: list[Any]) -> list[Message]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        fcall = part.get("function_call", part.get("functionCall"))
        fresp = part.get("function_response", part.get("functionResponse"))
        if isinstance(fcall, dict):
            call = _call(fcall, "args")
            if call:
                calls.append(call)
        elif isinstance(fresp, dict):
            results.append(_tool_message(result_text(fresp.get("response")), fresp.get("id"),
                                         fresp.get("name")))
        elif part.get("thought") is True:
            continue  # the model's thinking, not its answer
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    out: list[Message] = []
    content = "".join(texts)
    if content or calls or not results:
        out.append(Message(role=role, content=content, tool_calls=calls))
    return out + results


def _genai_parts(role: str, parts: list[Any], raw: dict[str, Any]) -> list[Message]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for part in parts:
        if not isinstance(part, dict):
            if isinstance(part, str):
                texts.append(part)
            continue
        ptype = part.get("type")
        if ptype == "tool_call":
            call = _call(part)
            if call:
                calls.append(call)
        elif ptype == "tool_call_response":
            body = part.get("response", part.get("result"))
            results.append(_tool_message(result_text(body), part.get("id"), part.get("name")))
        elif ptype == "text":
            texts.append(as_text(part.get("content", part.get("text"))))
        elif ptype in ("reasoning", "thinking", "blob", "uri", "file"):
            continue
        else:  # another dialect's typed part passed through (``input_text``, ...)
            text = _part_text(part)
            texts.append(text if text is not None else _unread(f"{role} part", part))
    out: list[Message] = []
    content = "".join(texts)
    if content or calls or not results:
        name = raw.get("name")
        out.append(Message(role=role, content=content, tool_calls=calls,
                           name=_str(name) if role != "tool" else None,
                           tool_call_id=_str(raw.get("tool_call_id"))))
    if role == "tool" and results and out and not out[0].content and not out[0].tool_calls:
        out = []
    return out + results


def _chat_calls(raw: dict[str, Any]) -> list[ToolCall]:
    raw_calls = raw.get("tool_calls")
    if raw_calls is None and isinstance(raw.get("additional_kwargs"), dict):
        raw_calls = raw["additional_kwargs"].get("tool_calls")  # LangChain / LlamaIndex
    calls: list[ToolCall] = []
    for item in raw_calls if isinstance(raw_calls, list) else []:
        item = jsonish(item)
        if isinstance(item, dict):
            call = _call(item)
            if call:
                calls.append(call)
    legacy = raw.get("function_call")
    if isinstance(legacy, dict) and not calls:
        call = _call(legacy)
        if call:
            calls.append(call)
    return calls


def _lc_role(raw: dict[str, Any]) -> tuple[str | None, dict[str, Any]] | None:
    """A LangChain message: serialized (``lc``/``kwargs``) or plain ``type``."""
    if raw.get("lc") == 1 and isinstance(raw.get("kwargs"), dict) and isinstance(
            raw.get("id"), list) and raw["id"]:
        cls = str(raw["id"][-1]).lower()
        if cls not in _LC_TYPES:
            return None
        body = dict(raw["kwargs"])
        role = _LC_TYPES[cls] or ROLES.get(str(body.get("role", "")).lower())
        return role, body
    kind = raw.get("type")
    if isinstance(kind, str) and kind.lower() in _LC_TYPES and "role" not in raw and (
            "content" in raw or "tool_calls" in raw):
        role = _LC_TYPES[kind.lower()] or ROLES.get(str(raw.get("role", "")).lower())
        return role, raw
    return None


def read_message(raw: Any, default_role: str = "user", part: str = "input",
                 tool_names: set[str] | None = None) -> list[Message]:
    """One message in any dialect as zero or more messages (a user turn holding several
    tool results becomes one tool message per result). Unreadable ones are kept as raw
    text and noted as unread."""
    if type(raw) is dict:
        plain = _plain(raw, part)
        if plain is not None:
            return plain
    elif isinstance(raw, str):
        _note(part, "text")
        return [Message(role=default_role, content=raw)]
    if not isinstance(raw, dict):
        if raw is None:
            return []
        _note(part, "raw")
        return [Message(role=default_role, content=_unread(part, raw))]
    kind = raw.get("type")
    if "role" not in raw or "lc" in raw:
        found = _roleless(raw, kind, default_role, part, tool_names)
        if found is not None:
            return found
    elif _is_tool_definition(raw):  # (of the shapes below, the one that may have a role)
        _note(part, "langchain.tool-definition")
        return []
    role_raw = raw.get("role")
    if role_raw is None and kind == "message":
        role_raw = default_role
    if role_raw is None and ("content" in raw or "parts" in raw or "blocks" in raw):
        role_raw = default_role
    if not isinstance(role_raw, str):
        _note(part, "raw")
        return [Message(role=default_role, content=_unread(part, raw))]
    role = ROLES.get(role_raw.lower().removeprefix("messagerole."))
    if role is None:
        # LangChain JS / LangGraph: a tool result whose role is the tool's name
        if raw.get("tool_call_id") or (tool_names and role_raw in tool_names):
            _note(part, "langchain.tool-role")
            return [_tool_message(result_text(raw.get("content")), raw.get("tool_call_id"),
                                  role_raw)]
        _note(part, "raw")
        return [Message(role=default_role, content=_unread(part, raw))]
    parts = raw.get("parts")
    if isinstance(parts, list):
        if any(isinstance(p, dict) and "type" in p for p in parts):
            _note(part, "otel.genai")
            return _genai_parts(role, parts, raw)
        _note(part, "gemini")
        return _gemini_parts(role, parts)
    if kind == "message":
        _note(part, "openai.responses")
    elif role_raw == "model":
        _note(part, "gemini")
    elif "blocks" in raw:
        _note(part, "llamaindex")
    return _chat_like(raw, role, part, tool_names, noted=kind == "message" or role_raw == "model"
                      or "blocks" in raw)


def _roleless(raw: dict[str, Any], kind: Any, default_role: str, part: str,
              tool_names: set[str] | None) -> list[Message] | None:
    """The shapes without a ``role`` (or serialized by LangChain): Responses API items,
    Vercel tool calls, LangChain messages, ``gen_ai.choice`` bodies, Gemini candidates;
    None when ``raw`` is none of them."""
    # OpenAI Responses API / Agents SDK items
    if "role" not in raw and kind in ("function_call", "function_call_output", "reasoning",
                                      "custom_tool_call", "custom_tool_call_output"):
        _note(part, "openai.responses")
        if kind in ("function_call", "custom_tool_call"):
            call = _call(raw, "arguments" if "arguments" in raw else "input")
            return [Message(role="assistant", tool_calls=[call] if call else [])]
        if kind == "reasoning":
            return []
        return [_tool_message(result_text(raw.get("output")), raw.get("call_id"))]
    vercel = _vercel_tool_call(raw, part)
    if vercel is not None:
        return vercel
    if _is_tool_definition(raw):
        _note(part, "langchain.tool-definition")
        return []
    lc = _lc_role(raw)
    if lc is not None:
        role, body = lc
        if role is None:
            _note(part, "raw")
            return [Message(role=default_role, content=_unread(part, raw))]
        _note(part, "langchain")
        return _chat_like(body, role, part, tool_names)
    if "role" not in raw and "type" not in raw and isinstance(raw.get("message"), dict):
        return read_message(raw["message"], "assistant", part, tool_names)  # gen_ai.choice
    if "role" not in raw and isinstance(raw.get("content"), dict) and isinstance(
            raw["content"].get("parts"), list):  # a Gemini candidate
        return read_message(raw["content"], "assistant", part, tool_names)
    return None


_PLAIN_CHAT = frozenset({"role", "content"})
# the model's validator given the fields as a dict builds the same Message as Message(...)
# at about two thirds of the cost (no keyword packing, no Python __init__): most messages
# are made on the fast path below
_new_message = Message.__pydantic_validator__.validate_python
_PLAIN_GENAI = (frozenset({"role", "parts"}), frozenset({"role", "parts", "finish_reason"}))


def _plain(raw: dict[str, Any], part: str) -> list[Message] | None:
    """The fast path for the two commonest shapes: ``{role, content: str}`` (OpenAI chat)
    and ``{role, parts: [{type: text, content: str}, ...]}`` (OpenTelemetry GenAI), read
    exactly as the general path reads them; None for anything else."""
    role_raw = raw.get("role")
    if type(role_raw) is not str:
        return None
    keys = raw.keys()
    if keys == _PLAIN_CHAT:
        content = raw["content"]
        if type(content) is not str:
            return None
        dialect = "gemini" if role_raw == "model" else "openai.chat"
    elif keys in _PLAIN_GENAI:
        parts = raw["parts"]
        if type(parts) is not list or not parts:
            return None
        texts = []
        for item in parts:
            if type(item) is not dict or item.get("type") != "text":
                return None
            text = item.get("content", item.get("text"))
            if type(text) is not str:
                return None
            texts.append(text)
        content = "".join(texts)
        dialect = "otel.genai"
    else:
        return None
    role = ROLES.get(role_raw.lower().removeprefix("messagerole."))
    if role is None:
        return None
    _note(part, dialect)
    return [_new_message({"role": role, "content": content})]


def _vercel_tool_call(raw: dict[str, Any], part: str) -> list[Message] | None:
    """A bare Vercel AI SDK tool call ``{toolCallId, toolName, input}`` (an item of
    ``ai.response.toolCalls``, which Langfuse keeps as a generation's output) as an assistant
    message; None when ``raw`` is not one."""
    if "role" in raw or "toolName" not in raw or "toolCallId" not in raw or \
            raw.get("type") not in (None, "tool-call"):
        return None
    call = _call(raw, "input" if "input" in raw else "args")
    if call is None:
        return None
    _note(part, "vercel.ai")
    return [Message(role="assistant", tool_calls=[call])]


def _vercel_response(value: dict[str, Any], part: str) -> list[Message] | None:
    """A Vercel AI SDK result ``{text, toolCalls: [...]}`` as one assistant message."""
    calls = value.get("toolCalls")
    if "role" in value or not isinstance(calls, list):
        return None
    _note(part, "vercel.ai")
    found = [c for m in read_messages(calls, "assistant", part) for c in m.tool_calls]
    text = value.get("text")
    return [Message(role="assistant", content=text if isinstance(text, str) else "",
                    tool_calls=found)]


def _lc_generations(generations: list[Any], part: str) -> list[Message]:
    """A LangChain LLM result's ``generations`` (``[[{text, message}]]``, one list per
    prompt) as the assistant messages they hold."""
    items = [g.get("message", g.get("text")) if isinstance(g, dict) else g
             for batch in generations for g in (batch if isinstance(batch, list) else [batch])]
    _note(part, "langchain")
    return read_messages(items, "assistant", part)


def _chat_like(raw: dict[str, Any], role: str, part: str, tool_names: set[str] | None,
               noted: bool = True) -> list[Message]:
    content = raw.get("content")
    if content is None and isinstance(raw.get("blocks"), list):
        content = raw["blocks"]
    calls = _chat_calls(raw)
    name = raw.get("name")
    if isinstance(content, list):
        messages, dialect = _blocks(role, content, raw)
        if not noted:
            _note(part, dialect)
        if calls and messages:
            first = messages[0]
            messages[0] = first.model_copy(update={"tool_calls": [*first.tool_calls, *calls]})
        return messages
    if not noted:
        _note(part, "openai.chat")
    if isinstance(content, dict):
        text = as_text(content)
    elif content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = _dumps(content)
    if role == "tool":
        text = result_text(content) if content is not None else ""
    return [Message(role=role, content=text, tool_calls=calls,
                    name=str(name) if isinstance(name, str) and name else None,
                    tool_call_id=_str(raw.get("tool_call_id", raw.get("tool_use_id"))))]


# --- message lists -----------------------------------------------------------------------

def transcript(text: str) -> list[Message] | None:
    """Role-prefixed text (``"system: ...\\nuser: ..."``) as messages, or None when the text
    is not such a transcript (it must start with a role and name two turns)."""
    matches = list(_TRANSCRIPT.finditer(text))
    if len(matches) < 2 or matches[0].start() != 0:
        return None
    out: list[Message] = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end():end]
        if index + 1 < len(matches) and body.endswith("\n"):
            body = body[:-1]
        role = ROLES[match.group(1).lower()]
        out.append(Message(role=role, content=body))
    return out


def _container(value: dict[str, Any], default_role: str, part: str) -> list[Message] | None:
    """Messages from a dict that holds them (request bodies, responses, framework inputs);
    None when the dict is one message itself."""
    vercel = _vercel_response(value, part)
    if vercel is not None:
        return vercel
    if isinstance(value.get("generations"), list) and "role" not in value:
        return _lc_generations(value["generations"], part)
    for key in ("messages", "input_messages", "chat_history"):
        if isinstance(value.get(key), list):
            messages = read_messages(value[key], default_role, part)
            system = value.get("system", value.get("system_instruction",
                                                   value.get("systemInstruction")))
            if system and not any(m.role == "system" for m in messages):
                messages = [Message(role="system", content=system_text(system)), *messages]
            return messages
    if isinstance(value.get("contents"), list | str):  # Gemini request
        _note(part, "gemini")
        system = value.get("system_instruction", value.get("systemInstruction",
                           (value.get("config") or {}).get("system_instruction")
                           if isinstance(value.get("config"), dict) else None))
        messages = read_messages(value["contents"], default_role, part)
        if system:
            messages = [Message(role="system", content=system_text(system)), *messages]
        return messages
    if isinstance(value.get("candidates"), list):  # Gemini response
        return [m for c in value["candidates"] if isinstance(c, dict)
                for m in read_message(c.get("content", c), "assistant", part)]
    if isinstance(value.get("output"), dict) and isinstance(value["output"].get("message"),
                                                           dict) and "role" not in value:
        _note(part, "bedrock.converse")  # a Converse response
        return read_messages(value["output"]["message"], "assistant", part)
    if isinstance(value.get("output"), list) and value.get("object") == "response":
        return read_messages(value["output"], "assistant", part)  # OpenAI Responses API
    if "input" in value and ("instructions" in value or isinstance(value["input"], list)) \
            and "role" not in value:
        messages = read_messages(value["input"], default_role, part)  # Responses request
        if isinstance(value.get("instructions"), str) and value["instructions"]:
            _note(part, "openai.responses")
            messages = [Message(role="system", content=value["instructions"]), *messages]
        return messages
    if isinstance(value.get("choices"), list):  # OpenAI chat completion
        return [m for c in value["choices"] if isinstance(c, dict)
                for m in read_messages(c.get("message", c.get("text")), "assistant", part)]
    if value.get("type") == "message" and value.get("role") == "assistant" and isinstance(
            value.get("content"), list) and "stop_reason" in value:
        return None  # an Anthropic response: one message
    if isinstance(value.get("args"), list) and "role" not in value:  # LlamaIndex
        _note(part, "llamaindex")
        return read_messages(value["args"][0] if len(value["args"]) == 1 else value["args"],
                             default_role, part)
    if "prompt" in value and "role" not in value and isinstance(value["prompt"], str | list):
        messages = read_messages(value["prompt"], default_role, part)  # Vercel AI ai.prompt
        if isinstance(value.get("system"), str) and value["system"]:
            messages = [Message(role="system", content=value["system"]), *messages]
        return messages
    if "message" in value and "role" not in value and "type" not in value:
        return read_messages(value["message"], "assistant", part)
    if "role" not in value and "type" not in value and "parts" not in value and \
            "lc" not in value and "content" not in value:
        if isinstance(value.get("text"), str):  # {"text": ..., "finish_reason": ...}
            _note(part, "text")
            return [Message(role=default_role, content=value["text"])]
        return []
    return None


def system_text(value: Any) -> str:
    """A system prompt given beside the messages (a string, text blocks or parts)."""
    value = jsonish(value)
    if isinstance(value, dict) and isinstance(value.get("parts"), list):
        value = value["parts"]
    return as_text(value)


def read_messages(value: Any, default_role: str = "user", part: str | None = None
                  ) -> list[Message]:
    """A list of messages from whatever holds them: a list in any dialect, a request or
    response body, a JSON or Python-repr string of one, a role-prefixed transcript."""
    part = part or ("output" if default_role == "assistant" else "input")
    if isinstance(value, str):
        parsed = jsonish(value)
        if isinstance(parsed, str):
            literal = python_literal(parsed)
            if literal is not parsed:
                _note(part, "python-repr")
            parsed = literal
        value = parsed
    if value is None or value == "":
        return []
    if isinstance(value, str):
        turns = transcript(value) if default_role == "user" else None
        if turns is not None:
            _note(part, "transcript")
            return turns
        _note(part, "text")
        return [Message(role=default_role, content=value)]
    if type(value) is dict:
        found = _plain(value, part)  # one plain message (never a container of them)
        if found is not None:
            return found
    if isinstance(value, dict):
        found = _container(value, default_role, part)
        if found is not None:
            return found
        value = [value]
    if not isinstance(value, list):
        _note(part, "raw")
        return [Message(role=default_role, content=_unread(part, value))]
    out: list[Message] = []
    tool_names: set[str] = set()
    for item in value:
        if isinstance(item, list):  # LangChain batches: [[messages]]
            out.extend(read_messages(item, default_role, part))
            continue
        item = jsonish(item) if isinstance(item, str) else item
        for message in read_message(item, default_role, part, tool_names):
            if message.tool_calls:
                tool_names.update(c.name for c in message.tool_calls)
            out.append(message)
    return _results_by_name(out)


def _results_by_name(messages: list[Message]) -> list[Message]:
    """Tool calls without ids (Gemini) get the result of the next tool message answering
    their function by name, so the call shows its result."""
    for message in messages:
        if message.role == "tool" and not message.tool_call_id:
            break
    else:
        return messages
    out = list(messages)
    for index, message in enumerate(out):
        if message.role != "tool" or message.tool_call_id:
            continue
        for back in range(index - 1, -1, -1):
            prior = out[back]
            calls = list(prior.tool_calls)
            hit = next((i for i, c in enumerate(calls) if c.id is None and c.result is None
                        and (message.name is None or c.name == message.name)), None)
            if hit is not None:
                calls[hit] = calls[hit].model_copy(update={"result": message.content})
                out[back] = prior.model_copy(update={"tool_calls": calls})
                break
    return out
