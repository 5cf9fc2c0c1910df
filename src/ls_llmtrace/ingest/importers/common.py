"""Pieces every trace format shares: lenient JSON, chat messages in their many dialects,
feedback records, and streaming a file's records with their location.

Real exporters put JSON inside strings (sometimes a JSON string of a JSON string), spell
roles differently (``human``, ``ai``, ``model``) and nest tool calls in four different
ways. Everything here is pure and tolerant: it reads what is there and never raises on
odd shapes; the format modules decide what is truly broken.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ls_llmtrace.errors import InputError
from ls_llmtrace.models import AnnotationRecord, Message, Scope, Source, ToolCall
from ls_llmtrace.timeutil import to_utc

# Schema id of feedback that came with the traces (not from one of our schema versions).
IMPORTED_SCHEMA_ID = "imported"

_ROLES = {
    "system": "system", "developer": "developer", "user": "user", "human": "user",
    "assistant": "assistant", "ai": "assistant", "model": "assistant", "bot": "assistant",
    "tool": "tool", "function": "tool", "ipython": "tool",
}


def jsonish(value: Any, depth: int = 3) -> Any:
    """Parse a string that holds JSON (possibly JSON of a JSON string); else return it."""
    while depth and isinstance(value, str):
        text = value.strip()
        if not text or text[0] not in '[{"':
            return value
        try:
            value = json.loads(text)
        except ValueError:
            return value
        depth -= 1
    return value


def as_text(value: Any) -> str:
    """Readable text of a content value: strings as they are, parts joined, the rest JSON."""
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
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind in ("text", "output_text", "input_text", "reasoning", None):
        for key in ("text", "content"):
            if isinstance(part.get(key), str):
                return str(part[key])
    if kind in ("tool_call", "tool_call_response", "function_call", "function_call_output"):
        return ""  # carried as tool calls / tool messages, not as text
    return None


def _tool_call(raw: dict[str, Any]) -> ToolCall | None:
    function: dict[str, Any] = raw["function"] if isinstance(raw.get("function"), dict) else {}
    name = raw.get("name") or function.get("name")
    if not name:
        return None
    arguments = raw.get("arguments", function.get("arguments", raw.get("args")))
    call_id = raw.get("call_id") or raw.get("id") or raw.get("tool_call_id")
    return ToolCall(id=str(call_id) if call_id is not None else None, name=str(name),
                    arguments=arguments)


def _is_tool_definition(raw: dict[str, Any]) -> bool:
    """LangChain puts tool *definitions* into the message list as `tool` messages."""
    content = raw.get("content")
    return (raw.get("role") == "tool" and isinstance(content, dict)
            and content.get("type") == "function" and isinstance(content.get("function"), dict)
            and not raw.get("tool_call_id"))


def to_message(raw: Any, default_role: str = "user") -> Message | None:
    """One chat message in any dialect we know, or None when it is not a message."""
    if isinstance(raw, str):
        return Message(role=default_role, content=raw)
    if not isinstance(raw, dict):
        return None
    kind = raw.get("type")
    # OpenAI Responses API items
    if kind == "function_call" and "role" not in raw:
        call = _tool_call(raw)
        return Message(role="assistant", tool_calls=[call] if call else [])
    if kind == "function_call_output" and "role" not in raw:
        return Message(role="tool", content=as_text(raw.get("output")),
                       tool_call_id=raw.get("call_id"))
    if _is_tool_definition(raw):
        return None
    role_raw = raw.get("role") or (kind if kind in _ROLES else None)
    if role_raw is None and isinstance(raw.get("message"), dict):  # gen_ai.choice events
        return to_message(raw["message"], "assistant")
    role = _ROLES.get(str(role_raw or default_role).lower())
    if role is None:
        return None
    calls: list[ToolCall] = []
    tool_call_id = raw.get("tool_call_id")
    text_parts: list[str] = []
    parts = raw.get("parts")
    if isinstance(parts, list):  # OpenTelemetry GenAI message parts
        for part in parts:
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype == "tool_call":
                call = _tool_call(part)
                if call:
                    calls.append(call)
            elif ptype == "tool_call_response":
                tool_call_id = tool_call_id or part.get("id")
                text_parts.append(as_text(part.get("response")))
            elif ptype == "text":
                text_parts.append(as_text(part.get("content")))
        content = "".join(text_parts)
    else:
        content = as_text(raw.get("content"))
    raw_calls = raw.get("tool_calls")
    if raw_calls is None and isinstance(raw.get("additional_kwargs"), dict):
        raw_calls = raw["additional_kwargs"].get("tool_calls")  # LangChain
    for item in raw_calls or []:
        if isinstance(item, dict):
            call = _tool_call(item)
            if call:
                calls.append(call)
    name = raw.get("name")
    return Message(role=role, content=content, tool_calls=calls,
                   name=str(name) if isinstance(name, str) and name else None,
                   tool_call_id=str(tool_call_id) if tool_call_id else None)


def to_messages(value: Any, default_role: str = "user") -> list[Message]:
    """A list of messages from whatever holds them (list, {"messages": [...]}, one message)."""
    value = jsonish(value)
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        for key in ("messages", "input_messages"):
            if isinstance(value.get(key), list):
                return to_messages(value[key], default_role)
        if isinstance(value.get("output"), list) and value.get("object") == "response":
            return to_messages(value["output"], "assistant")  # OpenAI Responses API
        if isinstance(value.get("choices"), list):  # OpenAI chat completion
            return [m for c in value["choices"] if isinstance(c, dict)
                    for m in to_messages(c.get("message"), "assistant")]
        if "message" in value and "role" not in value:
            return to_messages(value["message"], "assistant")
        if "role" not in value and "type" not in value and "parts" not in value:
            if "text" in value:  # {"text": ..., "finish_reason": ...}
                return [Message(role=default_role, content=as_text(value["text"]))]
            return []
        value = [value]
    if isinstance(value, str):
        return [Message(role=default_role, content=value)]
    if not isinstance(value, list):
        return []
    out: list[Message] = []
    for item in value:
        if isinstance(item, list):  # LangChain batches: [[messages]]
            out.extend(to_messages(item, default_role))
            continue
        message = to_message(jsonish(item), default_role)
        if message is not None:
            out.append(message)
    return out


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """System prompt (leading system/developer messages) and the rest."""
    system: list[str] = []
    rest = list(messages)
    while rest and rest[0].role in ("system", "developer"):
        system.append(rest.pop(0).content)
    return "\n\n".join(s for s in system if s), rest


def last_answer(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "assistant" and message.content:
            return message.content
    return ""


def number(value: Any) -> float | None:
    """A number from a number or a numeric string; None otherwise (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def feedback_record(
    *, key: str, trace_id: str, source: Source, name: str | None, value: Any = None,
    label: str | None = None, explanation: str | None = None,
    corrected_output: str | None = None, author: str | None = None,
    span_id: str | None = None, created_at: Any = None, metadata: dict[str, Any] | None = None,
) -> AnnotationRecord:
    """An AnnotationRecord for feedback that came inside the traces.

    Scores in 0..1 land in ``score``; other numbers stay in ``metadata.value`` (their
    scale is the source system's). Booleans become labels ``true``/``false``.
    """
    score = None
    meta = dict(metadata or {})
    if isinstance(value, bool):
        label = label or ("true" if value else "false")
    else:
        numeric = number(value)
        if numeric is not None and 0.0 <= numeric <= 1.0:
            score = numeric
        elif value is not None:
            meta["value"] = value
            if numeric is None and label is None and isinstance(value, str):
                label = value
    when: datetime | None = to_utc(created_at) if created_at else None
    return AnnotationRecord(
        record_key=key, trace_id=trace_id, schema_id=IMPORTED_SCHEMA_ID, schema_version=0,
        source=source, feedback_name=name, scope=Scope(kind="span", span_id=span_id)
        if span_id else Scope(), label=label, score=score, explanation=explanation or None,
        corrected_output=corrected_output, author=author, created_at=when, updated_at=when,
        metadata=meta,
    )


def iter_json_records(path: Path, stream_prefix: str | None = None
                      ) -> Iterator[tuple[str, Any]]:
    """(location, parsed JSON or an error string) per record of a file, streaming.

    A file is either JSON Lines (one record per line) or one JSON document; a document
    that is an array is streamed item by item (ijson), so memory stays flat; so is an
    object document's list at ``stream_prefix`` (ijson prefix, e.g. ``resourceSpans.item``),
    each item yielded as ``{key: [item]}``.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        first = handle.readline()
        while first and not first.strip():
            first = handle.readline()
        if first.lstrip().startswith(b"{") and _complete_json(first):
            more = handle.readline()
            while more and not more.strip():
                more = handle.readline()
            if not more:  # one JSON document on one line
                yield "record 0", json.loads(first)
                return
            handle.seek(0)
            for number_, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                try:
                    yield f"line {number_}", json.loads(text)
                except ValueError as exc:
                    yield f"line {number_}", _Bad(f"not valid JSON: {exc}",
                                                  text.decode("utf-8", "replace"))
            return
        handle.seek(0)
        head = handle.read(64)
        handle.seek(0)
        stripped = head.lstrip()
        if stripped.startswith(b"["):
            import ijson  # streaming parser: big arrays never sit in memory whole

            index = 0
            try:
                for index, item in enumerate(ijson.items(handle, "item", use_float=True)):
                    yield f"record {index}", item
            except ijson.JSONError as exc:
                yield f"record {index + 1}", _Bad(f"not valid JSON: {exc}", "")
            return
        if stream_prefix and head.lstrip().startswith(b"{"):
            import ijson

            key = stream_prefix.split(".")[0]
            count = 0
            try:
                for count, item in enumerate(ijson.items(handle, stream_prefix, use_float=True),
                                             start=1):
                    yield f"record {count - 1}", {key: [item]}
            except ijson.JSONError as exc:
                yield f"record {count}", _Bad(f"not valid JSON: {exc}", "")
                return
            if count:
                return
            handle.seek(0)
        try:
            yield "record 0", json.load(handle)
        except ValueError as exc:
            yield "record 0", _Bad(f"not valid JSON: {exc}", "")


class _Bad(str):
    """A record that could not be parsed: the reason, with the raw text on ``raw``."""

    raw: str

    def __new__(cls, reason: str, raw: str) -> _Bad:
        obj = super().__new__(cls, reason)
        obj.raw = raw
        return obj


def is_bad(value: Any) -> bool:
    return isinstance(value, _Bad)


def _complete_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
