"""Trace -> Label Studio task (pure).

``trace_id`` goes into both ``data`` (kept by every export format) and ``meta`` (kept by
the API and full JSON export), together with the schema version id.

Before anything goes to Label Studio, every text shown to reviewers can be redacted
(e-mail addresses, phone numbers, API keys, custom patterns: :class:`ReviewOptions`,
:mod:`ls_llmtrace.ingest.redact`) and is cut at a limit with a visible marker. Cutting
keeps the head of the text; for the texts reviewers mark spans on (the answer and the
conversation messages) the redactions are recorded in ``data["redactions"]``, so the sync
can give each span its range in the original text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.redact import Replacement, compile_patterns, redact
from ls_llmtrace.models import Message, Trace
from ls_llmtrace.schema.model import AnnotationSchema

EMPTY_CONVERSATION = "(no conversation before the answer)"
# Lines that look like source code, an indented block or a Markdown/ASCII table.
_CODE_LINE = re.compile(r"^(```|~~~|\t| {2,}\S|\s*[|+][-=+|: ]*[|+]\s*$|\s*\|.*\|\s*$)")

@dataclass(frozen=True)
class ReviewOptions:
    """What reviewers see: the length limit per text and which redactions apply."""

    max_chars: int = 20000
    redact: tuple[str, ...] = ()  # names from ls_llmtrace.ingest.redact.REDACTIONS
    custom_patterns: tuple[str, ...] = ()  # regular expressions, replaced by [redacted]
    _compiled: list[tuple[re.Pattern[str], str]] = field(default_factory=list, compare=False,
                                                         repr=False)

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ConfigError(f"max_chars {self.max_chars} is too small: use 100 or more")
        self._compiled.extend(compile_patterns(self.redact, self.custom_patterns))

    @classmethod
    def from_settings(cls) -> ReviewOptions:
        return cls(max_chars=settings.max_chars(), redact=settings.redactions(),
                   custom_patterns=settings.redaction_patterns())

    def clean_with_replacements(self, text: str) -> tuple[str, list[Replacement]]:
        """The text as reviewers see it, and the redactions in it (see ingest.redact)."""
        replaced: list[Replacement] = []
        if self._compiled:
            text, replaced = redact(text, self._compiled)
        if len(text) > self.max_chars:
            cut = len(text) - self.max_chars
            text = (text[:self.max_chars]
                    + f"\n[... {cut:,} more characters cut: limit {self.max_chars:,}, "
                    "see LS_LLMTRACE_MAX_CHARS ...]")
            replaced = [r for r in replaced if r[0] < self.max_chars]
        return text, replaced

    def clean(self, text: str) -> str:
        return self.clean_with_replacements(text)[0]


def _clean_all(value: Any, options: ReviewOptions, skip: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, str):
        return options.clean(value)
    if isinstance(value, list):
        return [_clean_all(v, options) for v in value]
    if isinstance(value, dict):
        return {k: v if k in skip else _clean_all(v, options) for k, v in value.items()}
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def looks_like_code(text: str) -> bool:
    """Whether a text is best read in monospace: a fenced block, JSON, or two or more
    indented or table lines."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") or "```" in text:
        return True
    return sum(1 for line in text.splitlines() if _CODE_LINE.match(line)) >= 2


def _pretty(value: Any) -> str:
    """Tool arguments and results as reviewers read them: JSON (also JSON in a string)
    indented, other text as it is."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _call_lines(call: Any, answered: set[str]) -> str:
    """A tool call as shown inside the message that made it (its result too, when no tool
    message of the trace carries it)."""
    head = f"\u2192 {call.name}" + (f" [{call.id}]" if call.id else "")
    args = _pretty(call.arguments)
    text = head + ("\n" + args if args else "")
    if call.result is not None and (call.id is None or call.id not in answered):
        text += "\n\u2190 result:\n" + _pretty(call.result)
    return text


def metadata_text(table: dict[str, str]) -> str:
    """The metadata as aligned ``key  value`` lines, the trace id first."""
    width = max((len(k) for k in table), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in table.items())


def _metadata_table(trace: Trace) -> dict[str, str]:
    meta = trace.metadata
    rows: dict[str, Any] = {
        "trace id": trace.trace_id,
        "source": trace.source,
        "model": meta.model,
        "model version": meta.model_version,
        "prompt": meta.prompt_name,
        "prompt version": meta.prompt_version,
        "product area": meta.product_area,
        "user segment": meta.user_segment,
        "environment": meta.environment,
        "latency ms": meta.latency_ms,
        "input tokens": meta.input_tokens,
        "output tokens": meta.output_tokens,
        "cost usd": meta.cost_usd,
        "error": meta.error,
        "start": meta.start_time.isoformat() if meta.start_time else None,
    }
    return {k: _as_text(v) for k, v in rows.items() if v not in (None, "")}


def trace_to_task(trace: Trace, schema: AnnotationSchema,
                  options: ReviewOptions | None = None) -> dict[str, Any]:
    """The task JSON for one trace under one schema version.

    ``options`` (default: from the settings) says how long texts may be and what to redact.
    """
    data = task_data(trace, options)
    meta = {
        "trace_id": trace.trace_id,
        "schema_id": schema.id,
        "schema_version": schema.version,
    }
    return {"data": {"trace_id": trace.trace_id, "schema_version": schema.version_id, **data},
            "meta": meta}


def task_data(trace: Trace, options: ReviewOptions | None = None) -> dict[str, Any]:
    """What a trace's task shows reviewers (its ``data``, less the schema version): the
    one text representation of a trace, for reviewers and evaluators alike."""
    options = options or ReviewOptions.from_settings()
    redactions: dict[str, list[list[int]]] = {}

    def spannable(key: str, text: str) -> str:
        shown, replaced = options.clean_with_replacements(text)
        if replaced:
            redactions[key] = [list(r) for r in replaced]
        return shown

    answered = {m.tool_call_id for m in trace.messages if m.tool_call_id}
    called = {c.id: c.name for m in trace.messages for c in m.tool_calls if c.id}

    def role(m: Message) -> str:
        if m.name:
            return f"{m.role} ({m.name})"
        if m.role == "tool" and m.tool_call_id in called:
            return f"tool ({called[m.tool_call_id]})"
        return m.role

    def content(m: Message) -> str:
        # the tool calls a message made are shown in it, after its own text (so offsets
        # inside that text are the same as in the trace)
        parts = [m.content] if m.content or not m.tool_calls else []
        return "\n\n".join(parts + [_call_lines(c, answered) for c in m.tool_calls])

    messages = [{"role": options.clean(role(m)),
                 "content": spannable(f"messages.{i}", content(m))}
                for i, m in enumerate(trace.messages)]
    tool_calls = [
        {"name": f"{c.name}" + (f" [{c.id}]" if c.id else ""),
         "content": f"arguments: {_as_text(c.arguments)}\nresult: {_as_text(c.result)}"}
        for c in trace.tool_calls()
    ]
    documents = [
        {"title": f"document {i + 1}" + (f" ({d.id})" if d.id else "")
                  + (f" score {d.score:g}" if d.score is not None else ""),
         "content": d.content}
        for i, d in enumerate(trace.documents)
    ]
    shown_docs = [{"title": d["title"], "content": options.clean(d["content"])}
                  for d in documents]
    answer = spannable("answer", trace.output)
    # Paragraphs needs at least one item to render; placeholders say "nothing here".
    data = {
        "trace_id": trace.trace_id,
        "system_prompt": trace.system_prompt or "(none)",
        "messages": messages or [{"role": "(none)", "content": EMPTY_CONVERSATION}],
        "messages_count": len(messages),
        "tool_calls": tool_calls or [{"name": "(none)", "content": "no tool calls"}],
        "documents": documents or [{"title": "(none)", "content": "no retrieved documents"}],
        "answer": answer,
        "metadata": _metadata_table(trace),
    }
    # the review screen's own keys (schema/labelconfig.py): the sections a trace has (a
    # list of none or one item, so the screen hides an empty one) and which read as code
    display = {
        "sections": {
            "system_prompt": [options.clean(trace.system_prompt)] if trace.system_prompt
            else [],
            "documents": shown_docs,
            "answer_code": [1] if looks_like_code(answer) else [],
            "conversation_code": [1] if any(looks_like_code(m["content"])
                                            for m in messages) else [],
        },
    }
    # the answer and the messages are cleaned above, with their redactions recorded
    data = _clean_all(data, options, skip=frozenset({"trace_id", "messages_count", "messages",
                                                     "answer"}))
    data.update(display, metadata_text=metadata_text(data["metadata"]))
    if redactions:
        data["redactions"] = redactions
    return data
