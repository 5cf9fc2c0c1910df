"""Label Studio annotation -> AnnotationRecord (pure).

Label Studio stores whatever a client sends, so every result is checked against the
schema version of its task: a value the schema does not know is rejected (kept aside
with the reason by the caller), never silently accepted or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .labelconfig import CORRECTED_OUTPUT, EXPLANATION, SCORE, VERDICT
from .models import AnnotationRecord, Scope, Source
from .schema import AnnotationSchema
from .timeutil import to_utc


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
    """One annotation -> one trace-level record, plus rejects for unusable results."""
    users = users or {}
    out = Mapped()
    trace_id = (task.get("data") or {}).get("trace_id") or (task.get("meta") or {}).get("trace_id")
    if not trace_id:
        out.rejects.append(ResultReject("data.trace_id", "task has no trace_id", task.get("data")))
        return out
    label_field = schema.label_field
    fields: dict[str, Any] = {}
    for result in annotation.get("result") or []:
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
        elif name == SCORE and kind == "number" and schema.has("score"):
            number = value.get("number")
            if (isinstance(number, bool) or not isinstance(number, int | float)
                    or not 0.0 <= float(number) <= 1.0):
                out.rejects.append(ResultReject(
                    SCORE, f"score {number!r} is not a number from 0.0 to 1.0", result))
                continue
            fields["score"] = float(number)
        elif name == EXPLANATION and kind == "textarea" and schema.has("explanation"):
            fields["explanation"] = _text(value)
        elif name == CORRECTED_OUTPUT and kind == "textarea" and schema.has("corrected_output"):
            fields["corrected_output"] = _text(value)
        else:
            out.rejects.append(ResultReject(
                str(name), f"control {name!r} of type {kind!r} is not in schema "
                f"{schema.version_id}", result))
    created: datetime | None = to_utc(annotation.get("created_at"))
    updated: datetime | None = to_utc(annotation.get("updated_at")) or created
    out.records.append(AnnotationRecord(
        record_key=record_key(project_id, int(annotation["id"])),
        trace_id=str(trace_id),
        schema_id=schema.id,
        schema_version=schema.version,
        source=Source.reviewer,
        scope=Scope(kind="trace"),
        author=_author(annotation, users),
        created_at=created,
        updated_at=updated,
        lead_time_s=annotation.get("lead_time"),
        ls_project_id=project_id,
        ls_task_id=int(task["id"]),
        ls_annotation_id=int(annotation["id"]),
        was_cancelled=bool(annotation.get("was_cancelled")),
        ground_truth=bool(annotation.get("ground_truth")),
        **fields,
    ))
    return out
