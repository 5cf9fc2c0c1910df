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
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.redact import Replacement, compile_patterns, redact
from ls_llmtrace.models import Span, SpanKind, ToolCall, Trace
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


# json.dumps builds a new encoder for every call with options; these are built once
_SORTED_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_JSON = json.JSONEncoder(ensure_ascii=False).encode
_INDENTED_JSON = json.JSONEncoder(ensure_ascii=False, indent=2).encode


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    kind = type(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)  # what json.dumps writes for them, without its machinery
    return _SORTED_JSON(value)


def looks_like_code(text: str) -> bool:
    """Whether a text is best read in monospace: a fenced block, JSON, or two or more
    indented or table lines."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") or "```" in text:
        return True
    if "\n" not in stripped:  # one line: neither indented lines nor a table
        return False
    return sum(1 for line in text.splitlines() if _CODE_LINE.match(line)) >= 2


# JSON up to this long on one line reads fine as it was sent; longer is indented
_SHORT_JSON = 100


def _pretty(value: Any, none: str = "") -> str:
    """Tool arguments and results as reviewers read them: a text as it was sent, unless it
    is a long one-line JSON object or list, which is indented (keys in their own order);
    objects the same way, written as JSON."""
    if value is None:
        return none
    if isinstance(value, str):
        if len(value) <= _SHORT_JSON or "\n" in value or value.lstrip()[:1] not in ("{", "["):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    compact = _JSON(value)
    if len(compact) <= _SHORT_JSON:
        return compact
    return _INDENTED_JSON(value)


def _call_lines(call: Any, answered: set[str], pretty: Callable[..., str] = _pretty) -> str:
    """A tool call as shown inside the message that made it (its result too, when no tool
    message of the trace carries it)."""
    head = f"\u2192 {call.name}" + (f" [{call.id}]" if call.id else "")
    args = pretty(call.arguments)
    text = head + ("\n" + args if args else "")
    if call.result is not None and (call.id is None or call.id not in answered):
        text += "\n\u2190 result:\n" + pretty(call.result)
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
    one text representation of a trace, for reviewers and evaluators alike. Every text
    in it is cleaned (redacted, cut at the limit) once, where it is built."""
    options = options or ReviewOptions.from_settings()
    redactions: dict[str, list[list[int]]] = {}
    limit = options.max_chars
    plain = not options._compiled  # no redactions: only an over-long text changes
    cut = options.clean

    def clean(text: str) -> str:
        return text if plain and len(text) <= limit else cut(text)

    def spannable(key: str, text: str) -> str:
        if plain and len(text) <= limit:
            return text
        shown, replaced = options.clean_with_replacements(text)
        if replaced:
            redactions[key] = [list(r) for r in replaced]
        return shown

    source = trace.messages
    answered = {m.tool_call_id for m in source if m.tool_call_id}
    called = {c.id: c.name for m in source for c in m.tool_calls if c.id}
    # each call's result: its own, else the content of the tool message that answers it
    returned = {m.tool_call_id: m.content for m in source
                if m.role == "tool" and m.tool_call_id}
    calls = [(c, c.result if c.result is not None or c.id is None else returned.get(c.id))
             for m in source for c in m.tool_calls]
    shown: dict[tuple[int, str], str] = {}

    def pretty(value: Any, none: str = "") -> str:
        # a call's arguments and result are shown in its message and in its step: made
        # readable once (the values belong to the trace, so their ids are stable here)
        key = (id(value), none)
        if key not in shown:
            shown[key] = _pretty(value, none)
        return shown[key]

    messages = []
    for i, m in enumerate(source):
        if m.name:
            role = f"{m.role} ({m.name})"
        elif m.role == "tool" and m.tool_call_id in called:
            role = f"tool ({called[m.tool_call_id]})"
        else:
            role = m.role
        if m.tool_calls:
            # the tool calls a message made are shown in it, after its own text (so
            # offsets inside that text are the same as in the trace)
            parts = [m.content] if m.content else []
            text = "\n\n".join(parts + [_call_lines(c, answered, pretty) for c in m.tool_calls])
        else:
            text = m.content
        messages.append({"role": clean(role), "content": spannable(f"messages.{i}", text)})
    tool_calls = [
        {"name": clean(c.name + (f" [{c.id}]" if c.id else "")),
         "content": clean(f"arguments: {_as_text(c.arguments)}\nresult: {_as_text(result)}")}
        for c, result in calls
    ]
    documents = [
        {"title": clean(f"document {i + 1}" + (f" ({d.id})" if d.id else "")
                        + (f" score {d.score:g}" if d.score is not None else "")),
         "content": clean(d.content)}
        for i, d in enumerate(trace.documents)
    ]
    answer = spannable("answer", trace.output)
    system_prompt = clean(trace.system_prompt) if trace.system_prompt else ""
    metadata = {k: clean(v) for k, v in _metadata_table(trace).items()}
    meta = trace.metadata
    # Paragraphs needs at least one item to render; placeholders say "nothing here".
    data: dict[str, Any] = {
        "trace_id": trace.trace_id,
        "system_prompt": system_prompt or "(none)",
        "messages": messages or [{"role": "(none)", "content": EMPTY_CONVERSATION}],
        "messages_count": len(messages),
        "tool_calls": tool_calls or [{"name": "(none)", "content": "no tool calls"}],
        "documents": documents or [{"title": "(none)", "content": "no retrieved documents"}],
        "answer": answer,
        "metadata": metadata,
        # flat keys the Data Manager shows as columns and filters by
        "model": _cleaned(meta.model, clean),
        "model_version": _cleaned(meta.model_version, clean),
        "product_area": _cleaned(meta.product_area, clean),
        "user_segment": _cleaned(meta.user_segment, clean),
        "latency_ms": meta.latency_ms,
    }
    # an agent's numbered steps (none for a single call), and a list of one item when
    # there are any, so the screen draws their heading only then
    steps = _steps(trace, clean, calls, pretty)
    data["steps"] = steps
    data["steps_shown"] = [len(steps)] if steps else []
    # the review screen's own keys (schema/labelconfig.py): the sections a trace has (a
    # list of none or one item, so the screen hides an empty one; the documents' indices
    # in ``documents``, which the screen shows from there) and which read as code
    data["sections"] = {
        "system_prompt": [1] if system_prompt else [],
        "documents": list(range(len(documents))),
        "answer_code": [1] if looks_like_code(answer) else [],
        "conversation_code": [1] if any(looks_like_code(m["content"])
                                        for m in messages) else [],
    }
    data["metadata_text"] = metadata_text(metadata)
    if redactions:
        data["redactions"] = redactions
    return data


def _cleaned(value: str | None, clean: Callable[[str], str]) -> str | None:
    return None if value is None else clean(value)


def screen_keys(data: dict[str, Any]) -> dict[str, Any]:
    """The review screen's keys a task converted before they existed lacks, read from the
    task's own data (so a schema push can fill them in without the trace): the aligned
    metadata and which sections it has. Such a task has no agent steps (its spans were not
    kept in the task) and its tool calls stay out of its messages. Empty when nothing is
    missing."""
    out: dict[str, Any] = {}
    table = data.get("metadata")
    if "metadata_text" not in data and isinstance(table, dict):
        out["metadata_text"] = metadata_text({str(k): str(v) for k, v in table.items()})
    if "sections" not in data:
        prompt = data.get("system_prompt")
        docs = [d for d in data.get("documents") or []
                if isinstance(d, dict) and d.get("title") != "(none)"]
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        answer = data.get("answer")
        out["sections"] = {
            "system_prompt": [1] if isinstance(prompt, str) and prompt
            and prompt != "(none)" else [],
            "documents": list(range(len(docs))),
            "answer_code": [1] if isinstance(answer, str) and looks_like_code(answer)
            else [],
            "conversation_code": [1] if any(isinstance(m.get("content"), str)
                                            and looks_like_code(m["content"])
                                            for m in messages) else [],
        }
    if "steps" not in data:
        out.update(steps=[], steps_shown=[])
    return out


# Agent steps -----------------------------------------------------------------------------

_MODEL_KEYS = ("llm.model_name", "gen_ai.response.model", "gen_ai.request.model")


_STEP_KINDS = frozenset({SpanKind.llm, SpanKind.tool, SpanKind.retrieval})


def _outermost(spans: list[Span], by_id: dict[str, Span]) -> dict[SpanKind, list[Span]]:
    """Per kind of step (LLM, tool, retrieval), its spans with no ancestor of the same
    kind (an LLM span that wraps another is one call), in the order of ``spans``."""
    out: dict[SpanKind, list[Span]] = {}
    steps = len(spans)  # a walk up this long has looped: parent links can be cyclic
    for span in spans:
        kind = span.kind
        if kind not in _STEP_KINDS:
            continue
        parent = by_id.get(span.parent_span_id or "")
        for _ in range(steps):
            if parent is None or parent.kind == kind:
                break
            parent = by_id.get(parent.parent_span_id or "")
        if parent is None or parent.kind != kind:
            out.setdefault(kind, []).append(span)
    return out


def _tool_name(span: Span) -> str:
    name = span.attributes.get("tool.name") or span.attributes.get("gen_ai.tool.name")
    return str(name) if name else span.name


@dataclass
class _Turn:
    """One answer of the model: an assistant message or the final answer."""

    text: str
    calls: list[Any]
    message_index: int  # index in the conversation; len(messages) for the final answer
    llm: Span | None = None
    tools: list[Span | None] = field(default_factory=list)


def _answers_from_last(trace: Trace) -> Iterator[_Turn]:
    """The model's answers, the last first: the final answer (unless the last assistant
    message is the answer and made no calls), then the assistant messages (made one at a
    time: matching usually stops long before the first)."""
    messages = trace.messages
    last = next((i for i in range(len(messages) - 1, -1, -1)
                 if messages[i].role == "assistant"), -1)
    if trace.output or last < 0 or messages[last].tool_calls:
        yield _Turn(trace.output, [], len(messages))
    for i in range(last, -1, -1):
        m = messages[i]
        if m.role == "assistant":
            yield _Turn(m.content, list(m.tool_calls), i)


def _match_turns(trace: Trace, order: dict[str, int], llms: list[Span],
                 tools: list[Span]) -> list[_Turn]:
    """The model's answers, each matched to its LLM span and its calls to tool spans,
    from the last answer back (an answer's LLM span starts before its tool spans, which
    start before the next answer's LLM span). Earlier answers no span is left for are
    conversation history, not steps. ``llms`` and ``tools``: the outermost spans of
    their kind, in ``order``."""
    bound = len(order) + 1
    used: set[str] = set()
    matched: list[_Turn] = []
    for turn in _answers_from_last(trace):
        first_tool = bound
        for call in turn.calls:
            free = [t for t in tools if t.span_id not in used and order[t.span_id] < bound]
            named = [t for t in free if _tool_name(t) == call.name] or free
            span = named[-1] if named else None
            if span is not None:
                used.add(span.span_id)
                first_tool = min(first_tool, order[span.span_id])
            turn.tools.append(span)
        before = [s for s in llms if order[s.span_id] < first_tool and s.span_id not in used]
        if not before:
            break
        turn.llm = before[-1]
        used.add(turn.llm.span_id)
        bound = order[turn.llm.span_id]
        matched.append(turn)
    return matched[::-1]


def agent_steps(trace: Trace, options: ReviewOptions | None = None,
                calls: list[ToolCall] | None = None) -> list[dict[str, Any]]:
    """The trace as numbered steps when it is an agent's (more than one LLM call, or any
    tool or retrieval span): per step its title, what the model was asked, what it called
    with which arguments, what came back or what it answered (``text``), and the
    ``span_id`` a reviewer's mark on it is about. Empty for a single call. ``calls``:
    ``trace.tool_calls()`` when the caller has them already."""
    options = options or ReviewOptions.from_settings()
    calls = trace.tool_calls() if calls is None else calls
    return _steps(trace, options.clean, [(c, c.result) for c in calls])


def _steps(trace: Trace, clean: Callable[[str], str], calls: list[tuple[ToolCall, Any]],
           pretty: Callable[..., str] = _pretty) -> list[dict[str, Any]]:
    """:func:`agent_steps`, given the text cleaner, each call with its result, and how
    tool texts are made readable."""
    spans = trace.spans
    if not spans:
        return []
    kinds = [s.kind for s in spans]
    if (kinds.count(SpanKind.llm) < 2 and SpanKind.tool not in kinds
            and SpanKind.retrieval not in kinds):
        return []  # one call (or none): no steps, and nothing to match
    # start time when every span has one, else the order of the trace
    if all(s.start_time is not None for s in spans):
        ranked = sorted(spans, key=lambda s: s.start_time.timestamp())  # type: ignore[union-attr]
    else:
        ranked = list(spans)
    order = {s.span_id: i for i, s in enumerate(ranked)}
    outermost = _outermost(ranked, {s.span_id: s for s in ranked})
    tools = outermost.get(SpanKind.tool, [])
    turns = _match_turns(trace, order, outermost.get(SpanKind.llm, []), tools)
    retrievals = outermost.get(SpanKind.retrieval, [])
    shown_tools = {t.span_id for turn in turns for t in turn.tools if t is not None}
    loose_tools = [t for t in tools if t.span_id not in shown_tools]
    if len(turns) < 2 and not retrievals and not shown_tools and not loose_tools:
        return []
    results = {c.id: result for c, result in calls if c.id}
    tool_of_call = {c.id: c.name for c, _ in calls if c.id}
    steps: list[tuple[float, str, str, str]] = []  # (place in time, title, text, span id)
    previous_end = -1
    for turn in turns:
        assert turn.llm is not None
        asked: list[str] = []
        for m in trace.messages[previous_end + 1:turn.message_index]:
            if m.role == "tool" and m.tool_call_id in tool_of_call:
                asked.append(f"(what {tool_of_call[m.tool_call_id]} returned, the step "
                             "above)")
            elif m.role != "assistant":
                asked.append(f"{m.role}: {m.content}")
        previous_end = turn.message_index
        model = next((str(turn.llm.attributes[k]) for k in _MODEL_KEYS
                      if turn.llm.attributes.get(k)), "")
        lines = ["asked:", *(asked or ["(nothing new)"])]
        if turn.calls:
            lines.append("")
            lines += ["called: " + ", ".join(c.name for c in turn.calls)]
        if turn.text:
            lines += ["", "answered:", turn.text]
        steps.append((order[turn.llm.span_id], "model call" + (f" ({model})" if model else ""),
                      "\n".join(lines), turn.llm.span_id))
        for i, (call, span) in enumerate(zip(turn.calls, turn.tools, strict=True)):
            result = call.result if call.result is not None else results.get(call.id)
            text = (f"called {call.name}" + (f" [{call.id}]" if call.id else "")
                    + " with:\n" + pretty(call.arguments, "(none)")
                    + "\n\nreturned:\n" + (pretty(result, "(none)") if result is not None
                                           else "(no result in the trace)"))
            where = order[span.span_id] if span is not None else order[turn.llm.span_id] + \
                0.001 * (i + 1)
            steps.append((where, f"tool {call.name}", text,
                          span.span_id if span is not None else turn.llm.span_id))
    for span in loose_tools:
        steps.append((order[span.span_id], f"tool {_tool_name(span)}",
                      "(a tool span the conversation does not mention)", span.span_id))
    for n, span in enumerate(retrievals):
        if n == 0 and trace.documents:
            text = "\n\n".join(f"document {i + 1}" + (f" ({d.id})" if d.id else "")
                               + (f", score {d.score:g}" if d.score is not None else "")
                               + f":\n{d.content}" for i, d in enumerate(trace.documents))
        else:
            text = "(retrieved documents: see the first retrieval step)" if n else \
                "(no documents in the trace)"
        steps.append((order[span.span_id], f"retrieval {span.name}".rstrip(), text,
                      span.span_id))
    steps.sort(key=lambda s: s[0])
    return [{"title": f"Step {number}: {clean(title)}", "text": clean(text),
             "span_id": span_id}
            for number, (_, title, text, span_id) in enumerate(steps, start=1)]
