"""Pieces every trace format shares: lenient JSON, chat messages (read by :mod:`.dialects`),
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

from ls_llmtrace import settings
from ls_llmtrace.errors import InputError
from ls_llmtrace.ingest.importers.dialects import (
    answer_text,
    as_text,
    jsonish,
    read_message,
    read_messages,
)
from ls_llmtrace.models import AnnotationRecord, Message, Rejected, Scope, Source
from ls_llmtrace.timeutil import to_utc

__all__ = [
    "IMPORTED_SCHEMA_ID", "RECORD_ERRORS", "answer_text", "as_text", "bad", "depth_over",
    "may_nest",
    "feedback_record",
    "is_bad", "iter_json_records", "jsonish", "last_answer", "number", "split_system",
    "to_message", "to_messages", "unreadable",
]

# Schema id of feedback that came with the traces (not from one of our schema versions).
IMPORTED_SCHEMA_ID = "imported"


def to_message(raw: Any, default_role: str = "user") -> Message | None:
    """The first message one raw message reads as (see :mod:`.dialects`), or None."""
    messages = read_message(raw, default_role)
    return messages[0] if messages else None


# A list of messages from whatever holds them, in any dialect (see :mod:`.dialects`): the
# dialect layer's reader itself (a wrapper would cost a call per message list).
to_messages = read_messages


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """System prompt (leading system/developer messages) and the rest."""
    system: list[str] = []
    rest = list(messages)
    while rest and rest[0].role in ("system", "developer"):
        system.append(rest.pop(0).content)
    return "\n\n".join(s for s in system if s), rest


def last_answer(messages: list[Message]) -> str:
    """The last assistant text (``"None"`` is no text)."""
    for message in reversed(messages):
        if message.role == "assistant" and message.content:
            text = answer_text(message.content)
            if text:
                return text
    return ""


def number(value: Any) -> float | None:
    """A number from a number or a numeric string; None otherwise (bools are not numbers)."""
    if type(value) is str:
        try:
            return float(value.strip())
        except ValueError:
            return None
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
    """(location, parsed JSON or a bad-record reason) per record of a file, streaming.

    A file is either JSON Lines (one record per line) or one JSON document; a document
    that is an array is streamed item by item, so memory stays flat; so is an object
    document's list at ``stream_prefix`` (``key.item``, e.g. ``resourceSpans.item``), each
    item yielded as ``{key: [item]}``. Memory is bounded on any input: a record larger than
    ``LS_LLMTRACE_MAX_RECORD_BYTES`` or nested deeper than ``LS_LLMTRACE_MAX_DEPTH`` is a bad
    record (and the reader goes on with the next one), never a crash.
    """
    limit = settings.max_record_bytes()
    max_depth = settings.max_depth()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        first = handle.readline(limit + 1)
        while first and not first.strip():
            first = handle.readline(limit + 1)
        if first.lstrip().startswith(b"{"):
            too_long = len(first) > limit and not first.endswith(b"\n")
            while too_long and first and not first.endswith(b"\n"):
                first = handle.readline(1 << 20)
            more = handle.readline(limit + 1)
            while more and not more.strip():
                more = handle.readline(limit + 1)
            complete = not too_long and _complete_json(first)
            if complete and not more:  # one JSON document on one line
                yield "record 0", _loads(first, max_depth)
                return
            # JSON Lines: a complete first line, or a broken / oversized one followed by a
            # line that is a whole object itself (a pretty-printed document has neither)
            if complete or too_long or (more.lstrip().startswith(b"{")
                                        and len(more) <= limit and _complete_json(more)):
                handle.seek(0)
                yield from _json_lines(handle, limit, max_depth)
                return
        handle.seek(0)
        head = handle.read(64)
        handle.seek(0)
        stripped = head.lstrip()
        if stripped.startswith(b"["):
            yield from stream_items(handle, None, limit, max_depth)
            return
        if stream_prefix and stripped.startswith(b"{"):
            key = stream_prefix.split(".")[0]
            count = 0
            for location, item in stream_items(handle, key, limit, max_depth):
                count += 1
                yield location, item if is_bad(item) else {key: [item]}
            if count:
                return
            handle.seek(0)
        if path.stat().st_size > limit:
            yield "record 0", _Bad(f"a JSON document of {path.stat().st_size} bytes is larger "
                                   f"than LS_LLMTRACE_MAX_RECORD_BYTES ({limit}); write it as "
                                   "JSON Lines or an array", "")
            return
        yield "record 0", _loads(handle.read(), max_depth)


def _json_lines(handle: Any, limit: int, max_depth: int) -> Iterator[tuple[str, Any]]:
    number_ = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number_ += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest, a chunk at a time
                line = handle.readline(1 << 20)
            yield f"line {number_}", _Bad(f"a line longer than LS_LLMTRACE_MAX_RECORD_BYTES "
                                          f"({limit} bytes)", "")
            continue
        text = line.strip()
        if text:
            yield f"line {number_}", _loads(text, max_depth)


def _loads(text: bytes, max_depth: int) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        return _Bad(f"nested deeper than LS_LLMTRACE_MAX_DEPTH ({max_depth})",
                    text[:2000].decode("utf-8", "replace"))
    except ValueError as exc:
        return _Bad(f"not valid JSON: {exc}", text[:2000].decode("utf-8", "replace"))
    if may_nest(text, max_depth) and depth_over(value, max_depth):
        return _Bad(f"nested deeper than LS_LLMTRACE_MAX_DEPTH ({max_depth})",
                    text[:2000].decode("utf-8", "replace"))
    return value


def may_nest(text: bytes | str, max_depth: int) -> bool:
    """Whether a text has enough brackets to nest deeper than ``max_depth`` (a C-speed
    count that spares the walk for nearly every real record)."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > max_depth
    # bytes.replace finds a single byte with memchr and copies the rest with memcpy: a few
    # times cheaper than any per-byte count (translate, count); each count stops at ``cap``
    cap = max_depth + 1
    size = len(text)
    opened = size - len(text.replace(b"[", b"", cap))
    return opened + size - len(text.replace(b"{", b"", cap)) > max_depth


_CONTAINERS = (dict, list)  # a tuple: ``dict | list`` builds a union object at every call


def depth_over(value: Any, max_depth: int) -> bool:
    """Whether a parsed value nests containers deeper than ``max_depth`` (iterative, one
    level at a time)."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        below = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, _CONTAINERS):
                    below.append(child)
        level = below
    return False


def stream_items(handle: Any, key: str | None, limit: int, max_depth: int
                 ) -> Iterator[tuple[str, Any]]:
    """The items of a top-level array (``key`` None) or of the array at the top-level
    object's ``key``, built from the parser's events one at a time: an item nested deeper
    than ``max_depth`` or larger than about ``limit`` bytes is skipped (a bad record) and
    the stream goes on; a syntax error ends the stream with a bad record."""
    import ijson  # streaming parser: big arrays never sit in memory whole

    index = 0
    stack: list[Any] = []  # containers of the item being built
    keys: list[Any] = []
    size = 0
    skipping = 0  # > 0: inside an item being skipped, this many containers deep
    reason = ""
    outer = 0  # containers open outside the items
    in_key: Any = None
    target = False
    try:
        for event, value in ijson.basic_parse(handle, use_float=True):
            opening = event in ("start_map", "start_array")
            closing = event in ("end_map", "end_array")
            if not stack and not skipping:
                at_items = outer == 1 if key is None else (target and outer == 2)
                if at_items and event == "end_array":
                    outer -= 1
                    target = False
                    continue
                if not at_items:
                    if key is None:
                        if outer == 0 and event == "start_array":
                            outer = 1
                            continue
                        yield "record 0", _Bad("not a JSON array", "")
                        return
                    if event == "map_key" and outer == 1:
                        in_key = value
                    elif opening:
                        outer += 1
                        target = event == "start_array" and outer == 2 and in_key == key
                    elif closing:
                        outer -= 1
                    continue
            if skipping:
                if opening:
                    skipping += 1
                elif closing:
                    skipping -= 1
                if skipping == 0:
                    yield f"record {index}", _Bad(reason, "")
                    index += 1
                continue
            if opening:
                if len(stack) + 1 > max_depth:
                    skipping = len(stack) + 1
                    reason = f"nested deeper than LS_LLMTRACE_MAX_DEPTH ({max_depth})"
                    stack, keys, size = [], [], 0
                    continue
                container: Any = {} if event == "start_map" else []
                _add(stack, keys, container)
                stack.append(container)
                keys.append(None)
                continue
            if event == "map_key":
                keys[-1] = value
                size += len(value) + 4
                continue
            if closing:
                done = stack.pop()
                keys.pop()
                if not stack:
                    yield f"record {index}", done
                    index += 1
                    size = 0
                continue
            size += len(value) + 2 if isinstance(value, str) else 8
            if not stack:
                yield f"record {index}", value
                index += 1
                continue
            if size > limit:
                skipping = len(stack)
                reason = f"larger than LS_LLMTRACE_MAX_RECORD_BYTES ({limit} bytes)"
                stack, keys, size = [], [], 0
                continue
            _add(stack, keys, value)
    except ijson.JSONError as exc:
        yield f"record {index}", _Bad(f"not valid JSON: {exc}", "")
    except UnicodeDecodeError as exc:
        yield f"record {index}", _Bad(f"not valid UTF-8: {exc.reason}", "")


def _add(stack: list[Any], keys: list[Any], value: Any) -> None:
    if not stack:
        return
    parent = stack[-1]
    if isinstance(parent, dict):
        parent[keys[-1]] = value
    else:
        parent.append(value)


class _Bad(str):
    """A record that could not be parsed: the reason, with the raw text on ``raw``."""

    raw: str

    def __new__(cls, reason: str, raw: str) -> _Bad:
        obj = super().__new__(cls, reason)
        obj.raw = raw
        return obj


def is_bad(value: Any) -> bool:
    return isinstance(value, _Bad)


# what converting one odd record may raise besides a ValidationError: kept as its reject
RECORD_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                 RecursionError, UnicodeError)


def unreadable(file: str, location: str, exc: BaseException, raw: Any = "") -> Rejected:
    """The reject of a record whose conversion failed in an unexpected way."""
    reason = "nested too deeply to read" if isinstance(exc, RecursionError) \
        else f"unreadable: {type(exc).__name__}: {str(exc)[:300]}"
    return Rejected(file, location, "(record)", reason, str(raw)[:2000])


def bad(reason: str, raw: str = "") -> Any:
    """A bad record: ``reason`` with the raw text on ``.raw`` (see :func:`is_bad`)."""
    return _Bad(reason, raw)


def _complete_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except RecursionError:
        return True  # complete, but too deep: the line reader rejects it
    except ValueError:
        return False
    return True
