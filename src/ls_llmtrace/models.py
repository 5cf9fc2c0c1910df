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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError


class StrictModel(BaseModel):
    """The base of every model read from outside: an unknown field (a typo) is an error,
    never silently ignored. Fields with an alias (``from``, ``schema``) accept their Python
    name too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def validation_errors(exc: ValidationError, top: str = "(top)",
                      tag: str | None = None) -> list[tuple[str, str]]:
    """``(dotted field path, message)`` of every error; ``top`` names the whole input when
    the error has no path; ``tag`` (a discriminated union's tag) is dropped from paths."""
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]
        out.append((".".join(str(p) for p in loc) or top, err["msg"]))
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


def write_rejects(rejects: Iterable[Rejected], path: Path) -> None:
    """Keep rejected items aside: one JSON object per line (file, location, field, reason,
    raw)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for r in rejects:
            out.write(json.dumps({"file": r.file, "location": r.location, "field": r.field,
                                  "reason": r.reason, "raw": r.raw}, ensure_ascii=False,
                                 default=str) + "\n")



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
    # `import --explain` and the summary's unread count; not part of the trace's data
    _reading: Any = PrivateAttr(default=None)

    @property
    def reading(self) -> Any:
        return self._reading

    @reading.setter
    def reading(self, value: Any) -> None:
        self._reading = value

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
