"""Trace -> Label Studio task (pure).

``trace_id`` goes into both ``data`` (kept by every export format) and ``meta`` (kept by
the API and full JSON export), together with the schema version id.

Before anything goes to Label Studio, every text shown to reviewers can be redacted
(e-mail addresses, phone numbers, API keys, custom patterns: :class:`ReviewOptions`) and
is cut at a limit with a visible marker. Cutting keeps the head of the text, so span
offsets a reviewer marks still point into the original text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import AnnotationSchema

EMPTY_CONVERSATION = "(no conversation before the answer)"

REDACTIONS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # international with a leading +, or North-American 3-3-4 with separators; bare digit
    # runs (ids, dates, amounts) are left alone on purpose
    "phone": r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(?\d{1,4}\)?[\s.-]?){2,4}\d{2,4}"
             r"|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b)",
    "api_key": r"\b(?:sk|pk|rk)-(?:[A-Za-z]{2,8}-)?[A-Za-z0-9_-]{16,}"
               r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
               r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b"
               r"|(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*",
}


@dataclass(frozen=True)
class ReviewOptions:
    """What reviewers see: the length limit per text and which redactions apply."""

    max_chars: int = 20000
    redact: tuple[str, ...] = ()  # names from REDACTIONS
    custom_patterns: tuple[str, ...] = ()  # regular expressions, replaced by [redacted]
    _compiled: list[tuple[re.Pattern[str], str]] = field(default_factory=list, compare=False,
                                                         repr=False)

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ConfigError(f"max_chars {self.max_chars} is too small: use 100 or more")
        compiled = []
        for name in self.redact:
            if name not in REDACTIONS:
                raise ConfigError(f"unknown redaction {name!r}: use one of "
                                  f"{', '.join(REDACTIONS)}")
            compiled.append((re.compile(REDACTIONS[name]), f"[{name}]"))
        for pattern in self.custom_patterns:
            try:
                compiled.append((re.compile(pattern), "[redacted]"))
            except re.error as exc:
                raise ConfigError(f"bad redaction pattern {pattern!r}: {exc}") from exc
        self._compiled.extend(compiled)

    @classmethod
    def from_settings(cls) -> ReviewOptions:
        return cls(max_chars=settings.max_chars(), redact=settings.redactions(),
                   custom_patterns=settings.redaction_patterns())

    def clean(self, text: str) -> str:
        for pattern, replacement in self._compiled:
            text = pattern.sub(replacement, text)
        if len(text) > self.max_chars:
            cut = len(text) - self.max_chars
            text = (text[:self.max_chars]
                    + f"\n[... {cut:,} more characters cut: limit {self.max_chars:,}, "
                    "see LS_LLMTRACE_MAX_CHARS ...]")
        return text


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
    options = options or ReviewOptions.from_settings()
    messages = [
        {"role": m.role if not m.name else f"{m.role} ({m.name})",
         "content": m.content or ("(calls " + ", ".join(c.name for c in m.tool_calls) + ")"
                                  if m.tool_calls else "")}
        for m in trace.messages
    ]
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
    # Paragraphs needs at least one item to render; placeholders say "nothing here".
    data = {
        "trace_id": trace.trace_id,
        "schema_version": schema.version_id,
        "system_prompt": trace.system_prompt or "(none)",
        "messages": messages or [{"role": "(none)", "content": EMPTY_CONVERSATION}],
        "messages_count": len(messages),
        "tool_calls": tool_calls or [{"name": "(none)", "content": "no tool calls"}],
        "documents": documents or [{"title": "(none)", "content": "no retrieved documents"}],
        "answer": trace.output,
        "metadata": _metadata_table(trace),
    }
    data = _clean_all(data, options, skip=frozenset({"trace_id", "schema_version",
                                                     "messages_count"}))
    meta = {
        "trace_id": trace.trace_id,
        "schema_id": schema.id,
        "schema_version": schema.version,
    }
    return {"data": data, "meta": meta}
