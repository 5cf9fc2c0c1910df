"""Typed models of the three core concepts: Trace, AnnotationRecord and their parts, and
what every model read from outside shares: the strict base, the validation-error
formatter and the :class:`Rejected` item kept aside instead of used.

The native trace format is JSON Lines with one :class:`Trace` per line, exactly the JSON
that ``Trace.model_dump_json()`` writes. Only ``trace_id`` is required; see
``docs/native-format.md`` for the shape with an example.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from ls_llmtrace import settings


class StrictModel(BaseModel):
    """The base of every model read from outside: an unknown field (a typo) is an error,
    never silently ignored. Fields with an alias (``from``, ``schema``) accept their Python
    name too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FileModel(StrictModel):
    """The base of the files users write (schemas, migrations, queue rules, the feedback
    mapping): numbers must be finite too (``.inf``/``.nan`` in YAML is an error)."""

    model_config = ConfigDict(allow_inf_nan=False)  # merged with the strict base's


def validation_errors(exc: ValidationError, top: str = "(top)",
                      tag: str | None = None) -> list[tuple[str, str]]:
    """``(dotted field path, message)`` of every error; ``top`` names the whole input when
    the error has no path; ``tag`` (a discriminated union's tag) is dropped from paths."""
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]
        # a key the user wrote may hold anything: shown quoted when not plain text
        where = ".".join(p if isinstance(p, str) and p.isprintable() else
                         str(p) if isinstance(p, int) else printable(repr(p)) for p in loc)
        out.append((where or top, printable(" ".join(err["msg"].split()))))
    return out


def problems(exc: ValidationError, top: str = "(top)", tag: str | None = None) -> str:
    """Every validation error as ``field.path: message``, joined by ``; ``."""
    return "; ".join(f"{where}: {msg}" for where, msg in validation_errors(exc, top, tag))


@dataclass(frozen=True)
class Rejected:
    """An input item kept aside instead of used, and why (traces and feedback alike).

    ``file`` names the input (a file, or ``request`` for the Feedback API), ``location``
    the item in it (``line 7``, ``record 3``, an index), ``field`` the dotted path of the
    offending field or ``(record)``, ``raw`` the item as read.
    """

    file: str
    location: str
    field: str
    reason: str
    raw: Any = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.location}" if self.location else self.file

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.field}: {self.reason}"


def rejects_from_validation(exc: ValidationError, file: str, location: str,
                            raw: Any) -> list[Rejected]:
    """One :class:`Rejected` per validation error of an item."""
    return [Rejected(file, location, where, msg, raw)
            for where, msg in validation_errors(exc, "(record)")]


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` (JSON-like, models included) nests more than ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, BaseModel):
            item = item.__dict__
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class NotStorable(ValueError):
    """An item that could be built but not stored and read back; the message says why."""


def storable_body(model: BaseModel) -> str:
    """The JSON ``model`` is stored as, checked to read back as the same model: nesting at
    most ``LS_LLMTRACE_STORED_MAX_DEPTH`` (the reader's own limit is about 200), at most
    ``LS_LLMTRACE_STORED_MAX_KB``, text encodable as UTF-8 (no lone surrogates). Raises
    :class:`NotStorable` naming the problem."""
    limit = settings.stored_max_depth()
    if too_deep(model, limit + 2):  # the model's own levels (record > metadata) are free
        raise NotStorable(f"nested more than {limit} levels deep (LS_LLMTRACE_STORED_MAX_DEPTH)")
    try:
        body = model.model_dump_json()
    except PydanticSerializationError as exc:
        if "surrogate" in str(exc):
            raise NotStorable("text with a lone surrogate (not valid Unicode) cannot be "
                              "stored") from exc
        raise NotStorable(f"cannot be written as JSON: {exc}") from exc
    size = len(body.encode("utf-8"))
    if size > settings.stored_max_bytes():
        raise NotStorable(f"{size} bytes as JSON, above the limit of "
                          f"{settings.stored_max_bytes() // 1024} KB (LS_LLMTRACE_STORED_MAX_KB)")
    try:
        back = type(model).model_validate_json(body)
    except ValidationError as exc:
        raise NotStorable(f"would not read back: {problems(exc)}") from exc
    if back != model:  # the writer replaced something: NaN/Infinity, a surrogate in a key
        raise NotStorable("would not read back as sent: a NaN or infinite number, or a lone "
                          "surrogate (not valid Unicode) in a key")
    return body


def printable(text: str) -> str:
    """``text`` with any lone surrogate written as its escape, so it can be stored, logged
    and sent as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable_raw(raw: Any) -> Any:
    """``raw`` as a rejected item is kept aside: itself when it nests and weighs within
    the limits, else a cut-short text of it (a reject must never fail to be written)."""
    if not too_deep(raw, settings.stored_max_depth()):
        try:
            text = json.dumps(raw, sort_keys=True, default=str)
        except (TypeError, ValueError, RecursionError):
            text = None
        if text is not None and len(text) <= settings.stored_max_bytes():
            return raw
    try:
        preview = repr(raw)
    except RecursionError:
        preview = f"<{type(raw).__name__} nested too deep to show>"
    return {"cut_short": preview[:2000]}


def write_rejects(rejects: Iterable[Rejected], path: Path) -> None:
    """Keep rejected items aside: one JSON object per line (file, location, field, reason,
    raw)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # backslashreplace: a lone surrogate is written as its JSON escape (``\\ud800``)
    with path.open("w", encoding="utf-8", errors="backslashreplace") as out:
        for r in rejects:
            out.write(json.dumps({"file": r.file, "location": r.location, "field": r.field,
                                  "reason": r.reason, "raw": storable_raw(r.raw)},
                                 ensure_ascii=False, default=str) + "\n")



class ToolCall(StrictModel):
    """A tool (function) call the model asked for, with its result when known."""

    id: str | None = Field(None, description="Provider's id of the call; links the tool result.")
    name: str = Field(description="Tool or function name.")
    arguments: Any = Field(None, description="Arguments as sent (object or JSON string).")
    result: Any = Field(None, description="What the tool returned, when the trace has it.")


class Message(StrictModel):
    """One conversation message."""

    role: Literal["system", "user", "assistant", "tool", "developer"] = Field(
        description="Who spoke. `tool` messages carry a tool's result."
    )
    content: str = Field("", description="Text content (multi-part content joined as text).")
    name: str | None = Field(None, description="Optional participant or tool name.")
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Calls made here.")
    tool_call_id: str | None = Field(None, description="For `tool` messages: the call answered.")


class Document(StrictModel):
    """A retrieved document shown to the model."""

    id: str | None = None
    content: str = Field(description="The document text.")
    score: float | None = Field(None, description="Retriever score, when known.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class SpanKind(StrEnum):
    llm = "llm"
    tool = "tool"
    retrieval = "retrieval"
    agent = "agent"
    chain = "chain"
    other = "other"


class Span(StrictModel):
    """One step of the trace (an LLM call, a tool run, a retrieval...)."""

    span_id: str
    parent_span_id: str | None = None
    name: str = ""
    kind: SpanKind = SpanKind.other
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: str | None = Field(None, description="Error message when the span failed.")
    attributes: dict[str, Any] = Field(default_factory=dict)


class TraceMetadata(StrictModel):
    """What the model run was: who, which version, how long, how much."""

    model: str | None = Field(None, description="Model name as requested, e.g. `gpt-4o`.")
    model_version: str | None = Field(None, description="Exact model/version that answered.")
    prompt_name: str | None = None
    prompt_version: str | None = None
    product_area: str | None = None
    user_segment: str | None = None
    environment: str | None = None
    latency_ms: float | None = Field(None, ge=0)
    input_tokens: int | None = Field(None, ge=0)
    output_tokens: int | None = Field(None, ge=0)
    cost_usd: float | None = Field(None, ge=0)
    error: str | None = Field(None, description="Error of the whole trace, if it failed.")
    start_time: datetime | None = None
    end_time: datetime | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else, kept as is.")


class Trace(StrictModel):
    """One production interaction, normalized."""

    trace_id: str = Field(min_length=1, description="Stable id of the trace in its source system.")
    system_prompt: str = ""
    messages: list[Message] = Field(
        default_factory=list, description="Conversation before the answer."
    )
    documents: list[Document] = Field(default_factory=list)
    output: str = Field("", description="The final answer the user saw.")
    spans: list[Span] = Field(default_factory=list)
    metadata: TraceMetadata = Field(default_factory=TraceMetadata)
    source: str = Field("native", description="Format it was imported from.")
    feedback: list[AnnotationRecord] = Field(
        default_factory=list,
        description="Feedback that came inside the trace (scores, thumbs, corrections); "
        "stored as records on import.",
    )

    # how an importer read it (ls_llmtrace.ingest.importers.dialects.Reading), for
    # `import --explain` and the summary's unread count; not part of the trace's data. A
    # slot, not a pydantic private attribute: those cost every trace built a few
    # microseconds, and importers build many.
    __slots__ = ("_reading",)

    @property
    def reading(self) -> Any:
        return getattr(self, "_reading", None)  # unset until an importer sets it

    @reading.setter
    def reading(self, value: Any) -> None:
        object.__setattr__(self, "_reading", value)

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call in the conversation, results attached from `tool` messages."""
        results = {m.tool_call_id: m.content for m in self.messages
                   if m.role == "tool" and m.tool_call_id}
        calls: list[ToolCall] = []
        for message in self.messages:
            for call in message.tool_calls:
                if call.result is None and call.id is not None and call.id in results:
                    call = call.model_copy(update={"result": results[call.id]})
                calls.append(call)
        return calls


class Source(StrEnum):
    """Where a piece of feedback came from."""

    reviewer = "reviewer"
    end_user = "end_user"
    support = "support"
    qa = "qa"
    evaluator = "evaluator"
    judge = "judge"


class Scope(StrictModel):
    """What the feedback is about: the whole trace, a span, or a text range."""

    kind: Literal["trace", "span", "text_range"] = "trace"
    span_id: str | None = None
    target: Literal["message", "answer"] | None = Field(
        None, description="For text ranges: a conversation message or the final answer."
    )
    message_index: int | None = None
    start: int | None = Field(None, description="Start offset in the text as the reviewer "
                              "saw it (redacted, when redaction is on).")
    end: int | None = Field(None, description="End offset (exclusive), likewise.")
    text: str | None = Field(None, description="The quoted text of the range, as seen.")
    original_start: int | None = Field(
        None, description="Where the range starts in the original (unredacted) text; set "
        "only when redaction changed the text: otherwise `start` is the original's too.")
    original_end: int | None = Field(None, description="Where it ends in the original text.")


FieldOrigin = Literal["prediction", "prediction-changed", "manual"]


class PredictionRef(StrictModel):
    """The judge's prediction a reviewer's annotation was made from (Label Studio's
    ``parent_prediction``)."""

    id: int = Field(description="Label Studio's prediction id.")
    model_version: str | None = Field(
        None, description="The prediction's `model_version`: `<judge>-v<version>@<schema>` "
        "for this package's judges.")
    judge: str | None = Field(None, description="The judge's name, read from `model_version`.")


class AnnotationRecord(StrictModel):
    """The normalized unit of feedback. Every channel lands here."""

    record_key: str = Field(description="Natural key; upserts are by this key.")
    trace_id: str
    schema_id: str
    schema_version: int
    source: Source
    scope: Scope = Field(default_factory=Scope)
    label: str | None = None
    labels: list[str] = Field(default_factory=list, description="Span labels or categories.")
    score: float | None = Field(None, ge=0.0, le=1.0)
    explanation: str | None = None
    corrected_output: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    lead_time_s: float | None = None
    ls_project_id: int | None = None
    ls_task_id: int | None = None
    ls_annotation_id: int | None = None
    was_cancelled: bool = False
    ground_truth: bool = False
    deleted: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    feedback_name: str | None = Field(
        None, description="Metric or feedback key in the source system (e.g. `toxicity`, "
        "`thumbs`), for feedback imported with the traces."
    )
    prediction: PredictionRef | None = Field(
        None, description="For a reviewer's record: the judge's prediction the annotation "
        "was made from, when it was made from one.")
    origins: dict[str, FieldOrigin] = Field(
        default_factory=dict, description="Per field of this record (`label`, `labels`, "
        "`score`, `explanation`, `corrected_output`): `prediction` when the reviewer kept the "
        "judge's proposal, `prediction-changed` when they edited it, `manual` when they gave "
        "it themselves. A field is missing when that cannot be told (an API client's "
        "annotation made from no prediction). A judge explanation kept as proposed is not "
        "the reviewer's: `explanation` is then empty and its origin `prediction`.")
    adjudication: bool = Field(
        False, description="The schema owner's decision on a task whose reviewers disagreed "
        "(from an adjudication queue): it decides the trace's label.")

    def accepted(self, name: str) -> bool | None:
        """Whether the reviewer kept the judge's proposal for field ``name`` (None: the
        field's origin is not known)."""
        origin = self.origins.get(name)
        return None if origin is None else origin == "prediction"


Trace.model_rebuild()
