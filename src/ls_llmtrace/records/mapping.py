"""Label Studio annotation -> AnnotationRecord (pure).

Label Studio stores whatever a client sends, so every result is checked against the
schema version of its task: a value the schema does not know is rejected (kept aside
with the reason by the caller), never silently accepted or dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ls_llmtrace.models import AnnotationRecord, Scope, Source
from ls_llmtrace.schema.labelconfig import (
    ANSWER_SPANS,
    CATEGORIES,
    CORRECTED_OUTPUT,
    EXPLANATION,
    MESSAGE_SPANS,
    SCORE,
    VERDICT,
)
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.timeutil import to_utc


@dataclass
class ResultReject:
    field: str
    reason: str
    raw: Any


@dataclass
class Mapped:
    records: list[AnnotationRecord] = field(default_factory=list)
    rejects: list[ResultReject] = field(default_factory=list)


def record_key(project_id: int, annotation_id: int) -> str:
    return f"ls:{project_id}:{annotation_id}"


def span_record_key(project_id: int, annotation_id: int, result: dict[str, Any]) -> str:
    """``ls:<project>:<annotation>:<result id>``; results written without an id (by API
    clients, not the UI) get a digest of their content instead, stable across syncs."""
    result_id = result.get("id")
    if not result_id:
        content = json.dumps([result.get("from_name"), result.get("value")], sort_keys=True)
        result_id = "h" + hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"{record_key(project_id, annotation_id)}:{result_id}"


def _offset(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _span_scope(kind: str, value: dict[str, Any]) -> tuple[Scope, dict[str, Any]] | str:
    """(scope, extra metadata) of a span result, or the reason it is unusable."""
    text = value.get("text")
    text = text if isinstance(text, str) else None
    if kind == "labels":
        start, end = _offset(value.get("start")), _offset(value.get("end"))
        if start is None or end is None or start > end:
            return f"answer span offsets {value.get('start')!r}..{value.get('end')!r} are invalid"
        return Scope(kind="text_range", target="answer", start=start, end=end, text=text), {}
    first, last = _offset(value.get("start")), _offset(value.get("end"))
    start, end = _offset(value.get("startOffset")), _offset(value.get("endOffset"))
    if first is None or last is None or first > last or start is None or end is None:
        return (f"message span {value.get('start')!r}..{value.get('end')!r} offsets "
                f"{value.get('startOffset')!r}..{value.get('endOffset')!r} are invalid")
    extra = {"end_message_index": last} if last != first else {}
    scope = Scope(kind="text_range", target="message", message_index=first, start=start,
                  end=end, text=text)
    return scope, extra


def _author(annotation: dict[str, Any], users: dict[int, str]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or str(who.get("id"))
    if isinstance(who, int):
        return users.get(who, f"user:{who}")
    return None


def _text(value: dict[str, Any]) -> str:
    text = value.get("text")
    if isinstance(text, list):
        return "\n".join(str(t) for t in text)
    return str(text or "")


def map_annotation(
    task: dict[str, Any],
    annotation: dict[str, Any],
    schema: AnnotationSchema,
    project_id: int,
    users: dict[int, str] | None = None,
) -> Mapped:
    """One annotation -> one trace-level record, one record per span result (scope
    ``text_range``), plus rejects for unusable results."""
    users = users or {}
    out = Mapped()
    trace_id = (task.get("data") or {}).get("trace_id") or (task.get("meta") or {}).get("trace_id")
    if not trace_id:
        out.rejects.append(ResultReject("data.trace_id", "task has no trace_id", task.get("data")))
        return out
    label_field = schema.label_field
    score_field = schema.score_field
    span_field = schema.span_field
    fields: dict[str, Any] = {}
    categories_result: dict[str, Any] | None = None
    spans: list[tuple[dict[str, Any], list[str], Scope, dict[str, Any]]] = []
    for result in annotation.get("result") or []:
        if not isinstance(result, dict):
            out.rejects.append(ResultReject("result", "a result must be a JSON object", result))
            continue
        name = result.get("from_name")
        value = result.get("value") or {}
        kind = result.get("type")
        if name == VERDICT and kind == "choices" and label_field is not None:
            choices = value.get("choices") or []
            bad = [c for c in choices if c not in label_field.values]
            if bad or len(choices) != 1:
                out.rejects.append(ResultReject(
                    VERDICT, f"verdict {choices} is not one of {label_field.values} "
                    f"in schema {schema.version_id}", result))
                continue
            fields["label"] = choices[0]
        elif name == CATEGORIES and kind == "choices" and schema.categories:
            choices = value.get("choices") or []
            bad = [c for c in choices if c not in schema.categories]
            if bad or not choices:
                out.rejects.append(ResultReject(
                    CATEGORIES, f"categories {bad or choices} not among {schema.categories} "
                    f"in schema {schema.version_id}", result))
                continue
            fields["labels"] = list(choices)
            categories_result = result
        elif (name == SCORE and kind == "number" and score_field is not None
              and not score_field.is_rating):
            number = value.get("number")
            if (isinstance(number, bool) or not isinstance(number, int | float)
                    or not 0.0 <= float(number) <= 1.0):
                out.rejects.append(ResultReject(
                    SCORE, f"score {number!r} is not a number from 0.0 to 1.0", result))
                continue
            fields["score"] = float(number)
        elif (name == SCORE and kind == "rating" and score_field is not None
              and score_field.is_rating):
            stars = value.get("rating")
            if (isinstance(stars, bool) or not isinstance(stars, int)
                    or not 1 <= stars <= score_field.max_rating):
                out.rejects.append(ResultReject(
                    SCORE, f"rating {stars!r} is not a whole number of stars from 1 to "
                    f"{score_field.max_rating} in schema {schema.version_id}", result))
                continue
            fields["score"] = score_field.rating_to_score(stars)
        elif name == EXPLANATION and kind == "textarea" and schema.has("explanation"):
            fields["explanation"] = _text(value)
        elif name == CORRECTED_OUTPUT and kind == "textarea" and schema.has("corrected_output"):
            fields["corrected_output"] = _text(value)
        elif span_field is not None and (
                (name == ANSWER_SPANS and kind == "labels" and "answer" in span_field.targets)
                or (name == MESSAGE_SPANS and kind == "paragraphlabels"
                    and "messages" in span_field.targets)):
            chosen = value.get(kind) or []
            bad = [c for c in chosen if c not in span_field.labels]
            if bad or not chosen:
                out.rejects.append(ResultReject(
                    str(name), f"span labels {bad or chosen} not among {span_field.labels} "
                    f"in schema {schema.version_id}", result))
                continue
            scoped = _span_scope(str(kind), value)
            if isinstance(scoped, str):
                out.rejects.append(ResultReject(str(name), scoped, result))
                continue
            spans.append((result, list(chosen), *scoped))
        else:
            out.rejects.append(ResultReject(
                str(name), f"control {name!r} of type {kind!r} is not in schema "
                f"{schema.version_id}", result))
    if categories_result is not None and not schema.is_failing(fields.get("label")):
        out.rejects.append(ResultReject(
            CATEGORIES, f"failure categories {fields.pop('labels')} given with verdict "
            f"{fields.get('label')!r}, which is not failing in schema {schema.version_id}",
            categories_result))
    created: datetime | None = to_utc(annotation.get("created_at"))
    updated: datetime | None = to_utc(annotation.get("updated_at")) or created
    common: dict[str, Any] = {
        "trace_id": str(trace_id),
        "schema_id": schema.id,
        "schema_version": schema.version,
        "source": Source.reviewer,
        "author": _author(annotation, users),
        "created_at": created,
        "updated_at": updated,
        "lead_time_s": annotation.get("lead_time"),
        "ls_project_id": project_id,
        "ls_task_id": int(task["id"]),
        "ls_annotation_id": int(annotation["id"]),
        "was_cancelled": bool(annotation.get("was_cancelled")),
        "ground_truth": bool(annotation.get("ground_truth")),
    }
    out.records.append(AnnotationRecord(
        record_key=record_key(project_id, int(annotation["id"])),
        scope=Scope(kind="trace"), **common, **fields,
    ))
    for result, labels, scope, extra in spans:
        out.records.append(AnnotationRecord(
            record_key=span_record_key(project_id, int(annotation["id"]), result),
            scope=scope, labels=labels, metadata=extra, **common,
        ))
    return out
