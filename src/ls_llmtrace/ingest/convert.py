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
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import AnnotationSchema

EMPTY_CONVERSATION = "(no conversation before the answer)"

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
        if not self._compiled and len(text) <= self.max_chars:
            return text, []  # nothing to redact or cut: the common case, kept cheap
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


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


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

    messages = [
        {"role": options.clean(m.role if not m.name else f"{m.role} ({m.name})"),
         "content": spannable(f"messages.{i}", m.content or (
             "(calls " + ", ".join(c.name for c in m.tool_calls) + ")"
             if m.tool_calls else ""))}
        for i, m in enumerate(trace.messages)
    ]
    clean = options.clean  # every text reviewers see is cleaned as it is put in
    tool_calls = [
        {"name": clean(f"{c.name}" + (f" [{c.id}]" if c.id else "")),
         "content": clean(f"arguments: {_as_text(c.arguments)}\nresult: {_as_text(c.result)}")}
        for c in trace.tool_calls()
    ]
    documents = [
        {"title": clean(f"document {i + 1}" + (f" ({d.id})" if d.id else "")
                        + (f" score {d.score:g}" if d.score is not None else "")),
         "content": clean(d.content)}
        for i, d in enumerate(trace.documents)
    ]
    # Paragraphs needs at least one item to render; placeholders say "nothing here".
    data = {
        "trace_id": trace.trace_id,
        "system_prompt": clean(trace.system_prompt or "(none)"),
        "messages": messages or [{"role": "(none)", "content": EMPTY_CONVERSATION}],
        "messages_count": len(messages),
        "tool_calls": tool_calls or [{"name": clean("(none)"), "content": clean("no tool calls")}],
        "documents": documents or [{"title": clean("(none)"),
                                    "content": clean("no retrieved documents")}],
        "answer": spannable("answer", trace.output),
        "metadata": {k: clean(v) for k, v in _metadata_table(trace).items()},
    }
    if redactions:
        data["redactions"] = redactions
    return data
