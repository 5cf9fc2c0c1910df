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

from ls_llmtrace.errors import InputError
from ls_llmtrace.ingest.importers.dialects import (
    answer_text,
    as_text,
    jsonish,
    read_message,
    read_messages,
)
from ls_llmtrace.models import AnnotationRecord, Message, Scope, Source
from ls_llmtrace.timeutil import to_utc

__all__ = ["IMPORTED_SCHEMA_ID", "as_text", "feedback_record", "is_bad", "iter_json_records",
           "jsonish", "last_answer", "number", "split_system", "to_message", "to_messages"]

# Schema id of feedback that came with the traces (not from one of our schema versions).
IMPORTED_SCHEMA_ID = "imported"


def to_message(raw: Any, default_role: str = "user") -> Message | None:
    """The first message one raw message reads as (see :mod:`.dialects`), or None."""
    messages = read_message(raw, default_role)
    return messages[0] if messages else None


def to_messages(value: Any, default_role: str = "user", part: str | None = None
                ) -> list[Message]:
    """A list of messages from whatever holds them, in any dialect (see :mod:`.dialects`)."""
    return read_messages(value, default_role, part)


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
