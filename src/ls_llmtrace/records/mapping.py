"""Label Studio annotation -> AnnotationRecord (pure).

Label Studio stores whatever a client sends, so every result is checked against the
schema version of its task: a value the schema does not know is rejected (kept aside
with the reason by the caller), never silently accepted or dropped.

What the reviewer did with the judge's proposal is kept per field (``origins``) with the
prediction the annotation was made from (``prediction``). Label Studio's labeling UI marks
each result ``prediction``, ``prediction-changed`` or ``manual`` and the annotation's
``parent_prediction``; an API client marks nothing. When the parent prediction's results
are in the task they decide: a result equal to the judge's is ``prediction`` (unless the
UI says the reviewer gave it themselves), a different one ``prediction-changed``. A text
(explanation, corrected output) kept as the judge wrote it is never stored as the
reviewer's own, and the judge's own explanation control (``judge_explanation``, which the
submitted annotation carries along) is never read into a record.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ls_llmtrace.ingest.redact import with_original_range
from ls_llmtrace.labelstudio.results import (
    Choices,
    Decoded,
    Malformed,
    Number,
    Origin,
    Pairwise,
    ParagraphSpan,
    Rating,
    Span,
    TextArea,
    TextSpan,
    read_results,
    same_value,
)
from ls_llmtrace.models import AnnotationRecord, PredictionRef, Scope, Source
from ls_llmtrace.schema.labelconfig import (
    ANSWER_SPANS,
    CATEGORIES,
    CORRECTED_OUTPUT,
    EXPLANATION,
    FIRST_FAILING_STEP,
    JUDGE_EXPLANATION,
    MESSAGE_SPANS,
    PREFERENCE,
    PREFERENCE_REASON,
    SCORE,
    VERDICT,
    step_index,
)
from ls_llmtrace.schema.model import AnnotationSchema, ScoreField, SpanField
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


def _author(annotation: dict[str, Any], users: dict[int, str]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        email = who.get("email")
        return email if isinstance(email, str) and email else str(who.get("id"))
    if isinstance(who, int) and not isinstance(who, bool):
        return users.get(who, f"user:{who}")
    return None


# the record field each control of the schema fills
FIELD_OF_CONTROL = {VERDICT: "label", CATEGORIES: "labels", SCORE: "score",
                    EXPLANATION: "explanation", CORRECTED_OUTPUT: "corrected_output"}


def judge_of(model_version: str | None) -> str | None:
    """The judge's name in a ``model_version`` this package's backend gave
    (``<judge>-v<version>@<schema>``), else None."""
    if not model_version or "@" not in model_version:
        return None
    head = model_version.rsplit("@", 1)[0]
    name, sep, _ = head.rpartition("-v")
    return name if sep and name else None


@dataclass
class Proposal:
    """The prediction an annotation was made from: its reference, and its decoded
    results when the task carries them (``known``)."""

    ref: PredictionRef | None = None
    entries: list[Decoded] = field(default_factory=list)
    known: bool = False


def parent_prediction(task: dict[str, Any], annotation: dict[str, Any]) -> Proposal:
    """The annotation's ``parent_prediction``, looked up among the task's predictions."""
    wanted = annotation.get("parent_prediction")
    if isinstance(wanted, dict):
        wanted = wanted.get("id")
    if isinstance(wanted, bool) or not isinstance(wanted, int):
        return Proposal()
    for prediction in task.get("predictions") or []:
        if not isinstance(prediction, dict) or prediction.get("id") != wanted:
            continue
        version = prediction.get("model_version")
        version = str(version) if version else None
        entries = [e for e in read_results(prediction.get("result"))
                   if not isinstance(e, Malformed)]
        return Proposal(PredictionRef(id=wanted, model_version=version,
                                      judge=judge_of(version)), entries, True)
    return Proposal(PredictionRef(id=wanted))


def result_origin(entry: Decoded, proposal: Proposal) -> Origin | None:
    """What the reviewer did with the judge's proposal for this result (see the module
    docstring); None when it cannot be told."""
    said = entry.origin
    if not proposal.known:
        return said
    same_control = [p for p in proposal.entries
                    if p.from_name == entry.from_name and type(p) is type(entry)]
    if isinstance(entry, TextSpan | ParagraphSpan):
        # many spans per control: a span is the judge's when its region is (the UI keeps
        # the region id) or when it is exactly one of the judge's
        if any(same_value(entry, p) for p in same_control):
            return "manual" if said == "manual" else "prediction"
        if any(p.id is not None and p.id == entry.id for p in same_control):
            return "manual" if said == "manual" else "prediction-changed"
        return "manual" if said in (None, "prediction") else said
    if any(same_value(entry, p) for p in same_control):
        return "manual" if said == "manual" else "prediction"
    if not same_control:
        return "manual" if said in (None, "prediction") else said
    return "manual" if said == "manual" else "prediction-changed"


def _mapping(value: Any) -> dict[str, Any]:
    """A task's ``data`` or ``meta`` as a mapping (a client may store anything there)."""
    return value if isinstance(value, dict) else {}


def _trace_id(task: dict[str, Any], key: str = "trace_id") -> str | None:
    value = _mapping(task.get("data")).get(key) or _mapping(task.get("meta")).get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _lead_time(annotation: dict[str, Any], out: Mapped) -> float | None:
    """The annotation's lead time in seconds; one that is not a finite number of seconds
    is kept aside (the record is written without it)."""
    value = annotation.get("lead_time")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or abs(value) > 1e12:
        out.rejects.append(ResultReject("lead_time", f"lead_time {value!r} is not a number of "
                                        "seconds", value))
        return None
    return float(value)


def _span_scope(span: Span) -> tuple[Scope, dict[str, Any]]:
    """The scope (and extra metadata) of a span result."""
    if isinstance(span, TextSpan):
        return Scope(kind="text_range", target="answer", start=span.start, end=span.end,
                     text=span.text), {}
    extra = {"end_message_index": span.last} if span.last != span.first else {}
    return Scope(kind="text_range", target="message", message_index=span.first,
                 start=span.start, end=span.end, text=span.text), extra


def _accepts(schema: AnnotationSchema, name: str | None, kind: str | None) -> bool:
    """Whether this schema version has a control ``name`` giving results of ``kind``."""
    score, spans = schema.score_field, schema.span_field
    return {
        VERDICT: kind == "choices" and schema.label_field is not None,
        CATEGORIES: kind == "choices" and bool(schema.categories),
        SCORE: score is not None and kind == ("rating" if score.is_rating else "number"),
        EXPLANATION: kind == "textarea" and schema.has("explanation"),
        JUDGE_EXPLANATION: kind == "textarea" and schema.label_field is not None,
        CORRECTED_OUTPUT: kind == "textarea" and schema.has("corrected_output"),
        ANSWER_SPANS: kind == "labels" and spans is not None and "answer" in spans.targets,
        MESSAGE_SPANS: (kind == "paragraphlabels" and spans is not None
                        and "messages" in spans.targets),
    }.get(name or "", False)


def _steps(task: dict[str, Any]) -> list[dict[str, Any]]:
    steps = _mapping(task.get("data")).get("steps")
    return [s if isinstance(s, dict) else {} for s in steps] if isinstance(steps, list) else []


def _step_span(task: dict[str, Any], index: int) -> str | None:
    """The span id of step ``index`` (from 0) of the task's agent steps, if it has one."""
    steps = _steps(task)
    span_id = steps[index].get("span_id") if 0 <= index < len(steps) else None
    return span_id if isinstance(span_id, str) and span_id else None


def _step_mark(entry: Decoded | Malformed, schema: AnnotationSchema, task: dict[str, Any],
               ) -> tuple[int, str] | str:
    """(step index, span id) of a mark on an agent step, or why it is unusable."""
    index = step_index(entry.from_name)
    assert index is not None
    where = f"in schema {schema.version_id}"
    if not isinstance(entry, Choices):
        return f"step control {entry.from_name!r} of type {entry.type!r} is not in schema " \
            f"{schema.version_id}"
    bad = [c for c in entry.choices if c not in schema.step_labels]
    if bad or not entry.choices:
        return f"step labels {bad or list(entry.choices)} not among {schema.step_labels} {where}"
    span_id = _step_span(task, index)
    if span_id is None:
        return f"step {index + 1} is not an agent step of this task (with a span id)"
    return index, span_id


def _first_failing_step(entry: Decoded | Malformed, schema: AnnotationSchema,
                        task: dict[str, Any]) -> dict[str, Any] | str:
    """``{"step": n, "span_id": ...}`` of the first failing step, or why it is unusable."""
    field = schema.label_field
    if field is None or not field.first_failing_step or not isinstance(entry, Number):
        return f"control {entry.from_name!r} of type {entry.type!r} is not in schema " \
            f"{schema.version_id}"
    count = len(_steps(task))
    number = entry.number
    if number != int(number) or not 1 <= number <= count:
        return f"first failing step {number:g} is not a step number from 1 to {count}"
    return {"step": int(number), "span_id": _step_span(task, int(number) - 1)}


def _reason(entry: Decoded | Malformed, schema: AnnotationSchema,
            score_field: ScoreField | None, span_field: SpanField | None) -> str | None:
    """Why an accepted control's result is unusable under ``schema``, or None."""
    where = f"in schema {schema.version_id}"
    name = entry.from_name
    if name == SCORE and score_field is not None and score_field.is_rating:
        stars = entry.stars if isinstance(entry, Rating) else getattr(entry, "value", None)
        if not isinstance(entry, Rating) or entry.score(score_field.max_rating) is None:
            return (f"rating {stars!r} is not a whole number of stars from 1 to "
                    f"{score_field.max_rating} {where}")
        return None
    if name == SCORE:
        number = entry.number if isinstance(entry, Number) else getattr(entry, "value", None)
        if not isinstance(entry, Number) or not 0.0 <= entry.number <= 1.0:
            return f"score {number!r} is not a number from 0.0 to 1.0"
        return None
    if isinstance(entry, Malformed):
        return f"{entry.reason} {where}"
    if isinstance(entry, Choices) and name == VERDICT:
        values = schema.label_field.values if schema.label_field else []
        if len(entry.choices) != 1 or entry.choices[0] not in values:
            return f"verdict {list(entry.choices)} is not one of {values} {where}"
    elif isinstance(entry, Choices):
        bad = [c for c in entry.choices if c not in schema.categories]
        if bad or not entry.choices:
            return (f"categories {bad or list(entry.choices)} not among {schema.categories} "
                    f"{where}")
    elif isinstance(entry, TextSpan | ParagraphSpan) and span_field is not None:
        bad = [c for c in entry.labels if c not in span_field.labels]
        if bad or not entry.labels:
            return f"span labels {bad or list(entry.labels)} not among {span_field.labels} {where}"
    return None


def map_annotation(
    task: dict[str, Any],
    annotation: dict[str, Any],
    schema: AnnotationSchema,
    project_id: int,
    users: dict[int, str] | None = None,
    adjudication: bool = False,
) -> Mapped:
    """One annotation -> one trace-level record, one record per span result (scope
    ``text_range``), one per marked agent step (scope ``span``, the step's span id), plus
    rejects for unusable results. ``adjudication``: the annotation
    is in an adjudication queue, so the schema owner's is the deciding record."""
    users = users or {}
    out = Mapped()
    trace_id = _trace_id(task)
    if trace_id is None:
        out.rejects.append(ResultReject("data.trace_id", "task has no trace_id (a string)",
                                        task.get("data")))
        return out
    score_field = schema.score_field
    span_field = schema.span_field
    fields: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    proposal = parent_prediction(task, annotation)
    categories_result: Any = None
    spans: list[tuple[Span, list[str], Scope, dict[str, Any], Origin | None]] = []
    steps: list[tuple[Choices, int, str, Origin | None]] = []  # marks on agent steps
    first_step: dict[str, Any] | None = None
    first_step_result: Any = None
    for entry in read_results(annotation.get("result")):
        if isinstance(entry, Malformed) and entry.from_name is None:
            out.rejects.append(ResultReject("result", entry.reason, entry.raw))
            continue
        name, kind = entry.from_name or "", entry.type
        if step_index(name) is not None or name == FIRST_FAILING_STEP:
            found: Any = (_step_mark(entry, schema, task) if name != FIRST_FAILING_STEP
                          else _first_failing_step(entry, schema, task))
            if isinstance(found, str):
                out.rejects.append(ResultReject(name, found, entry.raw))
            elif isinstance(found, dict):
                first_step, first_step_result = found, entry.raw
            elif isinstance(entry, Choices):
                steps.append((entry, found[0], found[1],
                              result_origin(entry, proposal)))
            continue
        if not _accepts(schema, name, kind):
            out.rejects.append(ResultReject(
                name, f"control {name!r} of type {kind!r} is not in schema "
                f"{schema.version_id}", entry.raw))
            continue
        if name == JUDGE_EXPLANATION:
            continue  # the judge's words, shown read-only beside the form: never a field
        reason = _reason(entry, schema, score_field, span_field)
        origin = None if isinstance(entry, Malformed) else result_origin(entry, proposal)
        if reason is None and origin is not None and name in FIELD_OF_CONTROL:
            origins[FIELD_OF_CONTROL[name]] = origin
        if reason is not None:
            out.rejects.append(ResultReject(name, reason, entry.raw))
        elif isinstance(entry, TextArea) and origin == "prediction":
            pass  # the judge's text, kept as proposed: not the reviewer's own
        elif isinstance(entry, Choices) and name == VERDICT:
            fields["label"] = entry.choices[0]
        elif isinstance(entry, Choices):
            fields["labels"] = list(entry.choices)
            categories_result = entry.raw
        elif isinstance(entry, Number):
            fields["score"] = entry.number
        elif isinstance(entry, Rating) and score_field is not None:
            fields["score"] = entry.score(score_field.max_rating)
        elif isinstance(entry, TextArea):
            fields[name] = entry.text
        elif isinstance(entry, TextSpan | ParagraphSpan):
            scope, extra = _span_scope(entry)
            scope = with_original_range(scope, _mapping(task.get("data")),
                                        extra.get("end_message_index"))
            spans.append((entry, list(entry.labels), scope, extra, origin))
    if categories_result is not None and not schema.is_failing(fields.get("label")):
        out.rejects.append(ResultReject(
            CATEGORIES, f"failure categories {fields.pop('labels')} given with verdict "
            f"{fields.get('label')!r}, which is not failing in schema {schema.version_id}",
            categories_result))
        origins.pop("labels", None)
    if first_step is not None and not schema.is_failing(fields.get("label")):
        out.rejects.append(ResultReject(
            FIRST_FAILING_STEP, f"first failing step {first_step['step']} given with verdict "
            f"{fields.get('label')!r}, which is not failing in schema {schema.version_id}",
            first_step_result))
        first_step = None
    author = _author(annotation, users)
    created: datetime | None = to_utc(annotation.get("created_at"))
    updated: datetime | None = to_utc(annotation.get("updated_at")) or created
    common: dict[str, Any] = {
        "trace_id": str(trace_id),
        "schema_id": schema.id,
        "schema_version": schema.version,
        "source": Source.reviewer,
        "author": author,
        "created_at": created,
        "updated_at": updated,
        "lead_time_s": _lead_time(annotation, out),
        "ls_project_id": project_id,
        "ls_task_id": int(task["id"]),
        "ls_annotation_id": int(annotation["id"]),
        "was_cancelled": bool(annotation.get("was_cancelled")),
        "ground_truth": bool(annotation.get("ground_truth")),
        "prediction": proposal.ref,
        "adjudication": adjudication and author is not None and author == schema.owner,
    }
    out.records.append(AnnotationRecord(
        record_key=record_key(project_id, int(annotation["id"])),
        scope=Scope(kind="trace"), origins=origins, **common, **fields,
        metadata={"first_failing_step": first_step} if first_step is not None else {},
    ))
    for mark, index, span_id, origin in steps:
        out.records.append(AnnotationRecord(
            record_key=span_record_key(project_id, int(annotation["id"]), dict(mark.raw)),
            scope=Scope(kind="span", span_id=span_id), labels=list(mark.choices),
            metadata={"step": index + 1},
            origins={"labels": origin} if origin is not None else {}, **common,
        ))
    for span, labels, scope, extra, origin in spans:
        out.records.append(AnnotationRecord(
            record_key=span_record_key(project_id, int(annotation["id"]), dict(span.raw)),
            scope=scope, labels=labels, metadata=extra,
            origins={"labels": origin} if origin is not None else {}, **common,
        ))
    return out


PREFERENCES = ("left", "right", "tie", "both_bad")
# the record's label for each answer: the preferred trace carries ``preferred``
OUTCOME = {"left": "preferred", "right": "preferred", "tie": "tie", "both_bad": "both_bad"}


def _pair_sides(task: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Side -> {trace_id, model_version, compare, value}: from ``meta.pair_sides`` (a
    blind pair, maybe swapped), else from the trace ids of an older pair's ``data``."""
    sides = _mapping(_mapping(task.get("meta")).get("pair_sides"))
    out: dict[str, dict[str, Any]] = {}
    for side in ("left", "right"):
        entry = _mapping(sides.get(side))
        trace = entry.get("trace_id")
        if isinstance(trace, str) and trace:
            version = entry.get("model_version")
            out[side] = {"trace_id": trace,
                         "model_version": version if isinstance(version, str) else None,
                         "compare": entry.get("compare"), "value": entry.get("value")}
    if len(out) == 2:
        return out
    if sides:
        return None
    left, right = _trace_id(task, "left_trace_id"), _trace_id(task, "right_trace_id")
    if not left or not right:
        return None
    return {"left": {"trace_id": left, "model_version": None},
            "right": {"trace_id": right, "model_version": None}}


def map_pairwise_annotation(task: dict[str, Any], annotation: dict[str, Any],
                            schema: AnnotationSchema, project_id: int,
                            users: dict[int, str] | None = None) -> Mapped:
    """A pairwise annotation (``ingest/pairwise.py``) -> one record in the pair's terms,
    the screen's sides undone: on the preferred trace with label ``preferred``, or, for a
    tie or both bad, on the pair's first trace (by id) with label ``tie`` / ``both_bad``.
    The metadata names the preferred trace and model version, both traces and the side
    each was shown on; the optional reason is the explanation."""
    out = Mapped()
    data = _mapping(task.get("data"))
    sides = _pair_sides(task)
    if sides is None:
        out.rejects.append(ResultReject("meta.pair_sides", "pair task without both trace "
                                        "ids", _mapping(task.get("meta")).get("pair_sides")
                                        or data))
        return out
    selected: str | None = None
    reason: str | None = None
    for entry in read_results(annotation.get("result")):
        if isinstance(entry, Pairwise) and entry.from_name == PREFERENCE and selected is None:
            selected = entry.selected  # the older <Pairwise> control: left or right
        elif (isinstance(entry, Choices) and entry.from_name == PREFERENCE and selected is None
              and len(entry.choices) == 1 and entry.choices[0] in PREFERENCES):
            selected = entry.choices[0]
        elif isinstance(entry, TextArea) and entry.from_name == PREFERENCE_REASON \
                and reason is None:
            reason = entry.text.strip() or None
        else:
            out.rejects.append(ResultReject(str(entry.from_name),
                                            "a pairwise task takes one preference (one of "
                                            f"{', '.join(PREFERENCES)}) and an optional "
                                            "reason", entry.raw))
    if selected is None and not annotation.get("was_cancelled"):
        out.rejects.append(ResultReject(PREFERENCE, "no preference selected", annotation.get(
            "result")))
        return out
    left, right = sides["left"], sides["right"]
    first = min(left["trace_id"], right["trace_id"])
    winner = sides.get(selected or "") if selected in ("left", "right") else None
    other = (right if winner is left else left) if winner is not None else None
    created = to_utc(annotation.get("created_at"))
    out.records.append(AnnotationRecord(
        record_key=record_key(project_id, int(annotation["id"])),
        trace_id=winner["trace_id"] if winner is not None else first,
        # Not in the schema's own terms (no verdict): its own schema id, so a preference
        # never stands in for a trace's verdict (e.g. in golden sets).
        schema_id=f"{schema.id}/pairwise",
        schema_version=schema.version,
        source=Source.reviewer,
        scope=Scope(kind="trace"),
        label=OUTCOME.get(selected or ""),
        explanation=reason,
        feedback_name=PREFERENCE,
        author=_author(annotation, users or {}),
        created_at=created,
        updated_at=to_utc(annotation.get("updated_at")) or created,
        lead_time_s=_lead_time(annotation, out),
        ls_project_id=project_id,
        ls_task_id=int(task["id"]),
        ls_annotation_id=int(annotation["id"]),
        was_cancelled=bool(annotation.get("was_cancelled")),
        metadata={"pair_id": data.get("pair_id"), "selected": selected,
                  "trace_ids": sorted([left["trace_id"], right["trace_id"]]),
                  "left_trace_id": left["trace_id"], "right_trace_id": right["trace_id"],
                  "preferred_trace_id": winner["trace_id"] if winner else None,
                  "preferred_model_version": winner["model_version"] if winner else None,
                  "other_trace_id": other["trace_id"] if other else None,
                  "other_model_version": other["model_version"] if other else None,
                  "compared": {s["trace_id"]: s.get("value") for s in (left, right)
                               if s.get("compare")},
                  "compare": left.get("compare")},
    ))
    return out
