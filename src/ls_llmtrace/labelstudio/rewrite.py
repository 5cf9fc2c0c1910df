"""A schema migration applied to Label Studio results (pure, on the result codec).

:func:`rewrite_result` turns one annotation's ``result`` list under the old version into
the same under the new one; :func:`orphaned_values` says what in it the new version has
no place for. Where each value goes is the migration's business
(``schema/migration.py``); reading and building the entries is the codec's
(``labelstudio/results.py``). Entries the old version does not know (drift) are left
exactly as they are, for the sync to keep aside.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ls_llmtrace.labelstudio.results import (
    Choices,
    Decoded,
    Malformed,
    Number,
    ParagraphSpan,
    Rating,
    TextArea,
    TextSpan,
    read_result,
)
from ls_llmtrace.schema.diff import group_values
from ls_llmtrace.schema.labelconfig import (
    ANSWER_SPANS,
    CATEGORIES,
    CORRECTED_OUTPUT,
    EXPLANATION,
    MESSAGE_SPANS,
    SCORE,
    VERDICT,
    step_index,
)
from ls_llmtrace.schema.migration import Evidence, Group, Migration, move_values
from ls_llmtrace.schema.model import AnnotationSchema, ScoreField

# Which control holds which value group, and in results of which type.
GROUP_OF: dict[str, tuple[Group, str]] = {
    VERDICT: ("verdict", "choices"), CATEGORIES: ("categories", "choices"),
    ANSWER_SPANS: ("spans", "labels"), MESSAGE_SPANS: ("spans", "paragraphlabels")}
# Which field type a control belongs to (for `drop_field`).
FIELD_OF = {SCORE: "score", EXPLANATION: "explanation", CORRECTED_OUTPUT: "corrected_output",
            ANSWER_SPANS: "spans", MESSAGE_SPANS: "spans"}


def _group_of(name: str | None, schema: AnnotationSchema) -> tuple[Group, str] | None:
    """(value group, result type) of a control; an agent step's marks are failure
    categories, or failing verdict values in a schema without categories."""
    if name in GROUP_OF:
        return GROUP_OF[name]
    if step_index(name) is not None:
        return ("categories" if schema.categories else "verdict"), "choices"
    return None


@dataclass
class Review:
    """A value no rule could place: a person decides (the review queue)."""

    field: str
    value: str
    reason: str
    raw: dict[str, Any]


@dataclass
class Rewrite:
    result: list[Any]
    changes: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)


def score_of(entry: Decoded | Malformed, score_field: ScoreField | None) -> float | None:
    """The 0.0-1.0 score a ``score`` result holds under ``score_field``'s scale, or None
    (another type than the scale's, malformed, or stars out of range)."""
    if score_field is None:
        return None
    if isinstance(entry, Number) and not score_field.is_rating:
        return entry.number
    if isinstance(entry, Rating) and score_field.is_rating:
        return entry.score(score_field.max_rating)
    return None


def evidence_of(results: Iterable[Any], old: AnnotationSchema) -> Evidence:
    """The explanation and score of one annotation, for split rules."""
    explanation, score = "", None
    for entry in map(read_result, results):
        if isinstance(entry, TextArea) and entry.from_name == EXPLANATION:
            explanation = entry.text
        elif entry.from_name == SCORE:
            found = score_of(entry, old.score_field)
            score = score if found is None else found
    return Evidence(explanation, score)


def _rescale(entry: Decoded | Malformed, raw: dict[str, Any], old: AnnotationSchema,
             new: AnnotationSchema, out: Rewrite) -> dict[str, Any]:
    new_score = new.score_field
    score = score_of(entry, old.score_field)
    if score is None or new_score is None or isinstance(entry, Malformed):
        return raw  # drift: left for the sync to keep aside
    to_name, region = entry.to_name, entry.id
    if new_score.is_rating:
        rating = Rating.of_score(entry.from_name, to_name, score, new_score.max_rating,
                                 id=region, raw=raw)
        out.changes.append(f"score: {score:g} -> {rating.stars} star"
                           + "s" * (rating.stars != 1))
        return rating.to_result()
    out.changes.append(f"score: {score:g} -> number")
    return Number(entry.from_name, to_name, number=score, id=region, raw=raw).to_result()


def _with_values(entry: Choices | TextSpan | ParagraphSpan, values: list[str]) -> dict[str, Any]:
    if isinstance(entry, Choices):
        return replace(entry, choices=tuple(values)).to_result()
    return replace(entry, labels=tuple(values)).to_result()


def rewrite_result(results: list[Any], old: AnnotationSchema, new: AnnotationSchema,
                   migration: Migration) -> Rewrite:
    """One annotation's result list under ``old`` -> the same under ``new`` (pure).
    A result nothing moves is kept as it was, byte for byte."""
    dropped = migration.dropped_fields
    evidence = evidence_of(results, old)
    out = Rewrite(result=[])
    for raw in results:
        entry = read_result(raw)
        name = entry.from_name
        if isinstance(entry, Malformed) and name is None:
            out.result.append(raw)
            continue
        if FIELD_OF.get(str(name)) in dropped:
            out.changes.append(f"{name}: field dropped")
            continue
        if name == SCORE and migration.rescale:
            out.result.append(_rescale(entry, raw, old, new, out))
            continue
        grouped = _group_of(name, old)
        if isinstance(entry, Malformed) or grouped is None or entry.type != grouped[1]:
            out.result.append(raw)
            continue
        group = grouped[0]
        assert isinstance(entry, Choices | TextSpan | ParagraphSpan)
        values = entry.choices if isinstance(entry, Choices) else entry.labels
        span_text = entry.text if isinstance(entry, TextSpan | ParagraphSpan) else None
        moved = move_values(migration, group, values, evidence, span_text)
        out.changes += moved.changes
        out.reviews += [Review(group, value, reason, raw) for value, reason in moved.reviews]
        if not moved.values:
            continue  # nothing left of this result (dropped or sent to review)
        out.result.append(raw if moved.values == list(values) and not moved.changes
                          else _with_values(entry, moved.values))
    return out


def orphaned_values(results: list[Any], new: AnnotationSchema) -> list[str]:
    """What in one annotation the new version has no place for (what it would orphan)."""
    out: list[str] = []
    score_field = new.score_field
    for entry in map(read_result, results):
        name, kind = entry.from_name, entry.type
        if name is None:
            continue
        grouped = _group_of(name, new)
        if grouped is not None and kind == grouped[1]:
            group = grouped[0]
            allowed = new.step_labels if step_index(name) is not None \
                else group_values(new, group)
            if group == "spans" and new.span_field is not None:
                target = "answer" if name == ANSWER_SPANS else "messages"
                if target not in new.span_field.targets:
                    out.append(f"{name} (span labels no longer on {target})")
                    continue
            values = (entry.choices if isinstance(entry, Choices)
                      else entry.labels if isinstance(entry, TextSpan | ParagraphSpan) else ())
            out += [f"{group} {v!r}" for v in values if v not in allowed]
            if not allowed:
                out.append(f"{name} (field removed)")
        elif name == SCORE:
            if score_field is None:
                out.append("score (field removed)")
            elif kind != ("rating" if score_field.is_rating else "number"):
                out.append(f"score as {kind} (now {score_field.scale_id()})")
        elif name in (EXPLANATION, CORRECTED_OUTPUT) and not new.has(name):
            out.append(f"{name} (field removed)")
    return list(dict.fromkeys(out))


@dataclass
class OrphanReport:
    annotations: int = 0
    total: int = 0
    values: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        top = ", ".join(f"{v} ({n})" for v, n in self.values.most_common())
        return (f"{self.annotations} of {self.total} annotations would be orphaned"
                + (f": {top}" if top else ""))


def count_orphans(annotations: Iterable[dict[str, Any]], new: AnnotationSchema) -> OrphanReport:
    """How many annotations (and which values) a push of ``new`` without a migration
    would orphan."""
    report = OrphanReport()
    for annotation in annotations:
        report.total += 1
        found = orphaned_values(annotation.get("result") or [], new)
        if found:
            report.annotations += 1
            report.values.update(found)
    return report
