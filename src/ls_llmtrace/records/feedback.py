"""Feedback channels -> AnnotationRecords: end-user thumbs, support tickets, QA reviews,
automated evaluator scores.

Each channel has a typed input model (extra fields are refused, so a typo fails loudly)
and a mapping a team edits in YAML (``data/feedback_mapping.yaml`` is the documented
default; ``LS_LLMTRACE_FEEDBACK_MAPPING`` points at a copy). The mapping is pure:
:func:`map_feedback` turns one item into one record or raises :class:`FeedbackRejected`
with the reason. :func:`ingest` is the I/O edge: it writes what maps and keeps the rest
aside with the reason, item by item.

Records are keyed by a natural key: the client's own ``id`` when it sends one, otherwise
one derived from what identifies the signal (the ticket id, the QA reviewer, the
evaluator and its version...), so sending the same signal twice changes nothing.

A signal may name a trace that is not in the store yet; it is stored all the same and
linked when the trace arrives (:meth:`Store.upsert_traces`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, InputError
from ls_llmtrace.models import (
    AnnotationRecord,
    FileModel,
    NotStorable,
    Rejected,
    Scope,
    Source,
    StrictModel,
    printable,
    problems,
    storable_body,
    storable_raw,
)
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store
from ls_llmtrace.store.engine import Connection
from ls_llmtrace.timeutil import to_utc
from ls_llmtrace.yamlfiles import parse_yaml_mapping


class FeedbackRejected(InputError):
    """One feedback item could not be mapped; the message says which field and why."""


# ---------------------------------------------------------------------------------------
# The mapping file


class Scale(FileModel):
    """The range a channel's raw scores use; mapped linearly onto 0.0-1.0."""

    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.max <= self.min:
            raise ValueError(f"scale max {self.max} must be above min {self.min}")
        return self


class Outcome(FileModel):
    label: str
    score: float = Field(ge=0.0, le=1.0)

    @field_validator("label")
    @classmethod
    def _trim(cls, value: str) -> str:
        return value.strip()


class ThumbsMapping(FileModel):
    source: Source = Source.end_user
    up: Outcome = Outcome(label="pass", score=1.0)
    down: Outcome = Outcome(label="fail", score=0.0)


class SupportMapping(FileModel):
    source: Source = Source.support
    categories: dict[str, str] = Field(default_factory=dict,
                                       description="Ticket category -> label.")
    unknown_category: str = Field("reject", description="`reject`, or the label to use.")
    severity_scores: dict[str, float] = Field(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _trim(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip(): v.strip() for k, v in value.items()}

    @model_validator(mode="after")
    def _scores_in_range(self) -> SupportMapping:
        for name, value in self.severity_scores.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"severity {name!r} score {value} is not from 0.0 to 1.0")
        return self


class Threshold(FileModel):
    scale: Scale | None = None
    pass_threshold: float | None = Field(None, ge=0.0, le=1.0)
    higher_is_better: bool | None = None


class QAMapping(FileModel):
    source: Source = Source.qa
    scale: Scale = Scale(min=1, max=5)
    pass_threshold: float = Field(0.6, ge=0.0, le=1.0)


class EvaluatorMapping(FileModel):
    source: Source = Source.evaluator
    scale: Scale = Scale()
    pass_threshold: float = Field(0.5, ge=0.0, le=1.0)
    higher_is_better: bool = True
    evaluators: dict[str, Threshold] = Field(default_factory=dict)

    def settings_for(self, evaluator: str) -> tuple[Scale, float, bool]:
        own = self.evaluators.get(evaluator) or Threshold()
        return (own.scale or self.scale,
                own.pass_threshold if own.pass_threshold is not None else self.pass_threshold,
                own.higher_is_better if own.higher_is_better is not None
                else self.higher_is_better)


class SchemaRef(FileModel):
    id: str
    version: int = Field(ge=1)


class Channels(FileModel):
    thumbs: ThumbsMapping = ThumbsMapping()
    support: SupportMapping = SupportMapping()
    qa: QAMapping = QAMapping()
    evaluator: EvaluatorMapping = EvaluatorMapping()


class FeedbackMapping(FileModel):
    """The whole mapping file."""

    schema_ref: SchemaRef = Field(alias="schema")
    channels: Channels = Channels()

    def labels(self) -> set[str]:
        c = self.channels
        out = {c.thumbs.up.label, c.thumbs.down.label, *c.support.categories.values()}
        if c.support.unknown_category != "reject":
            out.add(c.support.unknown_category)
        return out

    def check_against(self, schema: AnnotationSchema) -> None:
        """Every label the mapping produces must be a label of the schema version."""
        if (schema.id, schema.version) != (self.schema_ref.id, self.schema_ref.version):
            raise ConfigError(f"the feedback mapping files records under "
                              f"{self.schema_ref.id}@v{self.schema_ref.version}, not "
                              f"{schema.version_id}")
        allowed = set(schema.label_field.values) if schema.label_field else set()
        # QA and evaluator thresholds produce pass / fail.
        unknown = sorted((self.labels() | {"pass", "fail"}) - allowed)
        if unknown:
            raise ConfigError(f"the feedback mapping uses labels {unknown} that schema "
                              f"{schema.version_id} does not have ({sorted(allowed)}): "
                              "fix the mapping file")


def parse_mapping(text: str, origin: str = "<string>") -> FeedbackMapping:
    """Read and check the text of a mapping file; ``origin`` names it in errors."""
    raw = parse_yaml_mapping(text, origin, ConfigError, "feedback mapping")
    try:
        return FeedbackMapping.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {problems(exc, 'item')}") from exc


def load_mapping(path: Path | None = None) -> FeedbackMapping:
    """Read and check the mapping file (default: settings.feedback_mapping_path())."""
    path = path or settings.feedback_mapping_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the feedback mapping {path}: {exc}; set "
                          "LS_LLMTRACE_FEEDBACK_MAPPING to an existing file") from exc
    return parse_mapping(text, str(path))


# ---------------------------------------------------------------------------------------
# What the channels send


class _Signal(StrictModel):
    trace_id: str = Field(min_length=1, description="The trace the signal is about.")
    id: str | None = Field(None, min_length=1,
                           description="Your own id of the signal; makes re-sending safe.")
    span_id: str | None = Field(None, description="The span it is about, if not the trace.")
    created_at: datetime | None = Field(None, description="When it was given (default: now).")
    model_version: str | None = Field(
        None, description="Used for statistics while the trace is not in the store.")
    product_area: str | None = None
    user_segment: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Thumb(_Signal):
    """An end user's thumbs up or down."""

    channel: Literal["thumbs"]
    value: Literal["up", "down"]
    comment: str | None = None
    user_id: str | None = Field(None, description="One thumb per user and trace: the last wins.")


class SupportTicket(_Signal):
    """A support escalation that names a trace."""

    channel: Literal["support"]
    ticket_id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    severity: str = Field(min_length=1)
    summary: str | None = None
    agent: str | None = None


class QAReview(_Signal):
    """A QA reviewer's score (on the team's scale) and notes."""

    channel: Literal["qa"]
    score: float
    notes: str | None = None
    reviewer: str | None = None
    label: str | None = Field(None, description="An explicit label wins over the threshold.")


class EvaluatorScore(_Signal):
    """An automated evaluator's result."""

    channel: Literal["evaluator"]
    evaluator: str = Field(min_length=1)
    evaluator_version: str | None = None
    score: float | None = None
    label: str | None = None
    explanation: str | None = None

    @model_validator(mode="after")
    def _something(self) -> EvaluatorScore:
        if self.score is None and self.label is None:
            raise ValueError("an evaluator result needs a score or a label")
        return self


FeedbackItem = Annotated[Thumb | SupportTicket | QAReview | EvaluatorScore,
                         Field(discriminator="channel")]
CHANNELS = ("thumbs", "support", "qa", "evaluator")
_ITEM = TypeAdapter(FeedbackItem)


def parse_item(raw: Any) -> Thumb | SupportTicket | QAReview | EvaluatorScore:
    """Validate one raw item (a dict); raise FeedbackRejected naming the fields."""
    if not isinstance(raw, dict):
        raise FeedbackRejected(f"a feedback item must be a JSON object, not {type(raw).__name__}")
    if raw.get("channel") not in CHANNELS:
        raise FeedbackRejected(f"channel: must be one of {', '.join(CHANNELS)} "
                               f"(got {raw.get('channel')!r})")
    try:
        return _ITEM.validate_python(raw)
    except ValidationError as exc:
        raise FeedbackRejected(problems(exc, "item", raw["channel"])) from exc


# ---------------------------------------------------------------------------------------
# Mapping (pure)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def natural_key(item: Thumb | SupportTicket | QAReview | EvaluatorScore) -> str:
    """The record key: the client's id, or one derived from what identifies the signal."""
    if item.id:
        return f"{item.channel}:id:{item.id}"
    if isinstance(item, Thumb):
        who = item.user_id or _digest(item.value, item.comment, item.created_at)
        return f"thumbs:{item.trace_id}:{item.span_id or ''}:{who}"
    if isinstance(item, SupportTicket):
        return f"support:{item.ticket_id}:{item.trace_id}"
    if isinstance(item, QAReview):
        who = item.reviewer or _digest(item.score, item.notes, item.created_at)
        return f"qa:{item.trace_id}:{item.span_id or ''}:{who}"
    return (f"evaluator:{item.evaluator}:{item.evaluator_version or ''}:{item.trace_id}:"
            f"{item.span_id or ''}")


def _normalize(value: float, scale: Scale, higher_is_better: bool = True) -> float:
    if not scale.min <= value <= scale.max:
        raise FeedbackRejected(f"score: {value} is outside the scale {scale.min}-{scale.max} "
                               "set in the feedback mapping")
    normalized = (value - scale.min) / (scale.max - scale.min)
    return round(normalized if higher_is_better else 1.0 - normalized, 6)


def map_feedback(item: Thumb | SupportTicket | QAReview | EvaluatorScore,
                 mapping: FeedbackMapping, now: datetime | None = None) -> AnnotationRecord:
    """One feedback item -> one record. Raises FeedbackRejected with the reason."""
    c = mapping.channels
    metadata: dict[str, Any] = dict(item.metadata)
    for dim in ("model_version", "product_area", "user_segment"):
        value = getattr(item, dim)
        if value is not None:
            metadata[dim] = value
        elif dim in metadata and not isinstance(metadata[dim], str | None):
            # a dimension the statistics group by: text only
            raise FeedbackRejected(f"metadata.{dim}: must be a string, not "
                                   f"{type(metadata[dim]).__name__}")
    label: str | None = None
    labels: list[str] = []
    score: float | None = None
    explanation: str | None = None
    author: str | None = None
    if isinstance(item, Thumb):
        source = c.thumbs.source
        outcome = c.thumbs.up if item.value == "up" else c.thumbs.down
        label, score, explanation, author = outcome.label, outcome.score, item.comment, \
            item.user_id
        metadata["thumb"] = item.value
    elif isinstance(item, SupportTicket):
        source = c.support.source
        category_label = c.support.categories.get(item.category)
        if category_label is None:
            if c.support.unknown_category == "reject":
                raise FeedbackRejected(
                    f"category: {item.category!r} is not in the feedback mapping "
                    f"(known: {', '.join(sorted(c.support.categories))})")
            category_label = c.support.unknown_category
        if item.severity not in c.support.severity_scores:
            raise FeedbackRejected(
                f"severity: {item.severity!r} is not in the feedback mapping "
                f"(known: {', '.join(sorted(c.support.severity_scores))})")
        label, labels = category_label, [item.category]
        score = c.support.severity_scores[item.severity]
        explanation, author = item.summary, item.agent
        metadata.update(ticket_id=item.ticket_id, severity=item.severity)
    elif isinstance(item, QAReview):
        source = c.qa.source
        score = _normalize(item.score, c.qa.scale)
        label = item.label or ("pass" if score >= c.qa.pass_threshold else "fail")
        explanation, author = item.notes, item.reviewer
        metadata["raw_score"] = item.score
    else:
        source = c.evaluator.source
        scale, threshold, higher = c.evaluator.settings_for(item.evaluator)
        if item.score is not None:
            score = _normalize(item.score, scale, higher)
            metadata["raw_score"] = item.score
        label = item.label or (None if score is None
                               else "pass" if score >= threshold else "fail")
        explanation = item.explanation
        author = item.evaluator + (f"@{item.evaluator_version}" if item.evaluator_version
                                   else "")
    scope = Scope(kind="span", span_id=item.span_id) if item.span_id else Scope()
    try:
        created = to_utc(item.created_at) or (now or datetime.now(UTC))
    except OverflowError as exc:  # year 1 with a positive offset, year 9999 with a negative
        raise FeedbackRejected(f"created_at: {item.created_at} is out of range in UTC"
                               ) from exc
    return AnnotationRecord(
        record_key=natural_key(item),
        trace_id=item.trace_id,
        schema_id=mapping.schema_ref.id,
        schema_version=mapping.schema_ref.version,
        source=source,
        scope=scope,
        label=label,
        labels=labels,
        score=score,
        explanation=explanation,
        author=author,
        created_at=created,
        updated_at=created,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------
# The I/O edge


@dataclass
class IngestResult:
    ids: list[str | None] = field(default_factory=list)  # per input item; None = rejected
    written: int = 0
    unchanged: int = 0
    waiting_for_trace: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def line(self) -> str:
        accepted = sum(1 for i in self.ids if i is not None)
        return (f"{accepted} signals accepted ({self.written} written, {self.unchanged} "
                f"unchanged, {self.waiting_for_trace} waiting for their trace), "
                f"{len(self.rejected)} rejected")


def ingest(store: Store, items: Iterable[tuple[str, Any]], mapping: FeedbackMapping,
           schema: AnnotationSchema | None = None) -> IngestResult:
    """Map and store ``(where, raw item)`` pairs in one transaction; reject per item.

    With ``schema``, a label outside the schema version is rejected too.
    """
    result = IngestResult()
    records: list[tuple[AnnotationRecord, bool]] = []  # (record, its time was given)
    now = datetime.now(UTC)
    allowed = set(schema.label_field.values) if schema and schema.label_field else None
    for where, raw in items:
        if isinstance(raw, Rejected):  # the reader could not read it
            result.ids.append(None)
            result.rejected.append(dataclasses.replace(raw, raw=storable_raw(raw.raw)))
            continue
        try:
            item = parse_item(raw)
            record = map_feedback(item, mapping, now)
            if allowed is not None and record.label is not None and record.label not in allowed:
                raise FeedbackRejected(f"label: {record.label!r} is not one of {sorted(allowed)} "
                                       f"in schema {schema.version_id if schema else ''}")
            storable_body(record)
        except (FeedbackRejected, NotStorable) as exc:
            reason = str(exc)
        except Exception as exc:  # one item a client got wrong never loses the batch
            reason = f"cannot be read ({type(exc).__name__}: {exc})"
        else:
            result.ids.append(record.record_key)
            records.append((record, item.created_at is not None))
            continue
        result.ids.append(None)
        source, _, location = where.rpartition(":")
        result.rejected.append(Rejected(source, location, "(record)", printable(reason),
                                        storable_raw(raw)))
    with store.transaction() as conn:
        for record, timed in records:
            if not timed:  # re-sent without a time: keep the first time it was seen
                record = _keep_first_seen(conn, record)
            if Store.upsert_record(conn, record):
                result.written += 1
            else:
                result.unchanged += 1
        for reject in result.rejected:
            channel = reject.raw.get("channel") if isinstance(reject.raw, dict) else None
            Store.reject_feedback(conn, f"{reject.where}:{_digest(reject.raw)}",
                                  printable(channel) if isinstance(channel, str) else None,
                                  reject.where, reject.reason, reject.raw)
        waiting = Store.unlinked_keys(conn, [r.record_key for r, _ in records])
        result.waiting_for_trace = sum(r.record_key in waiting for r, _ in records)
    return result


def _keep_first_seen(conn: Connection, record: AnnotationRecord) -> AnnotationRecord:
    old = Store.stored_record(conn, record.record_key)
    if old is None:
        return record
    same_time = record.model_copy(update={"created_at": old.created_at,
                                          "updated_at": old.updated_at})
    if same_time == old:
        return same_time
    return record.model_copy(update={"created_at": old.created_at})


def store_records(store: Store, records: Iterable[AnnotationRecord]) -> int:
    """Store records an importer built (e.g. evaluator scores found inside traces), by key;
    returns how many changed. Signals for traces not stored yet wait and are linked later."""
    changed = 0
    with store.transaction() as conn:
        for record in records:
            changed += Store.upsert_record(conn, record)
    return changed


# files -----------------------------------------------------------------------------------


def read_feedback_file(path: Path, channel: str | None = None,
                       fmt: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(file:line, item)`` for every line of a JSONL or CSV file. A line that cannot be
    read becomes a :class:`Rejected` (kept aside by :func:`ingest`), never a crash.
    ``channel`` fills in items that do not name theirs (e.g. a CSV export of one channel).
    """
    if channel is not None and channel not in CHANNELS:
        raise ConfigError(f"--channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if fmt == "csv":
        yield from _read_csv(path, data, channel)
    elif fmt == "jsonl":
        yield from _read_jsonl(path, data, channel)
    else:
        raise ConfigError(f"unknown feedback file format {fmt!r}: use jsonl or csv")


def _with_channel(raw: Any, channel: str | None) -> Any:
    if channel is not None and isinstance(raw, dict) and "channel" not in raw:
        return {"channel": channel, **raw}
    return raw


def _read_jsonl(path: Path, data: bytes, channel: str | None) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            raw = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield where, Rejected(str(path), str(number), "(record)", f"not UTF-8 text: {exc}",
                                  line.decode("utf-8", "replace"))
            continue
        except json.JSONDecodeError as exc:
            yield where, Rejected(str(path), str(number), "(record)",
                                  f"not valid JSON: {exc.msg} at column {exc.colno}",
                                  line.decode("utf-8", "replace"))
            continue
        yield where, _with_channel(raw, channel)


def _read_csv(path: Path, data: bytes, channel: str | None) -> Iterator[tuple[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc}): save the CSV as UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        return
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row:
            yield where, Rejected(str(path), str(reader.line_num), "(record)",
                                  "more cells than header columns", row[None])
            continue
        item: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        if "metadata" in item:
            try:
                item["metadata"] = json.loads(item["metadata"])
            except json.JSONDecodeError:
                yield where, Rejected(str(path), str(reader.line_num), "metadata",
                                      "not a JSON object", row)
                continue
        yield where, _with_channel(item, channel)

