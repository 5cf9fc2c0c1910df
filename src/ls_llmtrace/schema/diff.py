"""What changed between two versions of a schema, and whether old annotations survive it.

Pure functions. Every change has a *kind*; each kind is either compatible (old
annotations stay valid: added labels and fields, reworded rubric) or incompatible (old
annotations would hold values the new version does not have: removed, renamed, merged or
split labels, removed fields, a changed score scale). An incompatible change needs a
migration before it can be pushed over a project that has annotations.

Label values live in three groups: ``verdict`` (the label field's values), ``categories``
(failure categories) and ``spans`` (span labels). A removed value is reported as renamed,
merged, split or dropped when the migration says so; without a migration, a removed value
whose rubric definition reappears word for word under a new name (or that only changed
case) is reported as renamed, and anything else as removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ls_llmtrace.schema.model import (
    AnnotationSchema,
    CorrectedOutputField,
    LabelField,
    ScoreField,
    SpanField,
)

# kind -> compatible?
KINDS: dict[str, bool] = {
    "metadata_changed": True,  # title, owner or description
    "field_added": True,
    "field_removed": False,
    "label_added": True,
    "label_removed": False,
    "label_renamed": False,
    "labels_merged": False,
    "label_split": False,
    "label_dropped": False,
    "labels_reordered": True,
    "failing_changed": False,  # a stored verdict would change meaning (fail <-> pass)
    "required_changed": True,  # the form asks more or less of new annotations only
    "first_failing_step_changed": True,  # the form asks (or stops asking) for it
    "score_scale_changed": False,
    "score_step_changed": True,
    "span_target_added": True,
    "span_target_removed": False,
    "rubric_added": True,
    "rubric_reworded": True,
    "rubric_removed": True,
    "schema_id_changed": False,
}

EXIT_SAME = 0
EXIT_COMPATIBLE = 1
EXIT_INCOMPATIBLE = 4  # 2 and 3 are taken by configuration and Label Studio errors

GROUPS = ("verdict", "categories", "spans")

# (group, old value) -> (how, new values); how is rename | merge | split | drop
Moves = Mapping[tuple[str, str], tuple[str, tuple[str, ...]]]


@dataclass(frozen=True)
class Change:
    kind: str
    detail: str
    group: str | None = None
    old: tuple[str, ...] = ()
    new: tuple[str, ...] = ()

    @property
    def compatible(self) -> bool:
        return KINDS[self.kind]

    def line(self) -> str:
        tag = "compatible  " if self.compatible else "INCOMPATIBLE"
        return f"{tag} {self.kind:<20} {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "compatible": self.compatible, "detail": self.detail,
                "group": self.group, "old": list(self.old), "new": list(self.new)}


def group_values(schema: AnnotationSchema, group: str) -> list[str]:
    if group == "verdict":
        return list(schema.label_field.values) if schema.label_field else []
    if group == "categories":
        return schema.categories
    return list(schema.span_field.labels) if schema.span_field else []


def _field_types(schema: AnnotationSchema) -> list[str]:
    return [f.type for f in schema.fields]


def _definition(schema: AnnotationSchema, name: str) -> str | None:
    entry = schema.rubric.get(name)
    return " ".join(entry.definition.split()) if entry else None


def _group_changes(old: AnnotationSchema, new: AnnotationSchema, group: str,
                   moves: Moves) -> list[Change]:
    before, after = group_values(old, group), group_values(new, group)
    if not before and not after:
        return []
    out: list[Change] = []
    removed = [v for v in before if v not in after]
    added = [v for v in after if v not in before]
    explained: set[str] = set()  # added values a move accounts for
    merges: dict[str, list[str]] = {}
    for value in removed:
        move = moves.get((group, value))
        if move is None:
            continue
        how, targets = move
        if how == "merge":
            merges.setdefault(targets[0], []).append(value)
        elif how == "rename":
            out.append(Change("label_renamed", f"{group}: {value!r} -> {targets[0]!r}", group,
                              (value,), targets))
        elif how == "split":
            out.append(Change("label_split", f"{group}: {value!r} -> {list(targets)}", group,
                              (value,), targets))
        elif how == "drop":
            into = f"into {targets[0]!r}" if targets else "(values removed)"
            out.append(Change("label_dropped", f"{group}: {value!r} dropped {into}", group,
                              (value,), targets))
        explained.update(targets)
    for target, sources in merges.items():
        if target in before and target in after and target not in sources:
            sources.insert(0, target)  # "merge a and b into a": a keeps its name
        if len(sources) == 1:  # one value merged into another is a rename or a drop
            kind = "label_renamed" if target not in before else "label_dropped"
            verb = "->" if kind == "label_renamed" else "dropped into"
            out.append(Change(kind, f"{group}: {sources[0]!r} {verb} {target!r}", group,
                              (sources[0],), (target,)))
        else:
            out.append(Change("labels_merged", f"{group}: {sources} -> {target!r}", group,
                              tuple(sources), (target,)))
    unmoved = [v for v in removed if (group, v) not in moves]
    for value in unmoved:
        definition = _definition(old, value)
        twin = next((a for a in added if a not in explained and (
            a.lower() == value.lower()
            or (definition is not None and _definition(new, a) == definition))), None)
        if twin is not None:
            explained.add(twin)
            out.append(Change("label_renamed", f"{group}: {value!r} -> {twin!r} (same rubric)",
                              group, (value,), (twin,)))
        else:
            out.append(Change("label_removed", f"{group}: {value!r} removed", group, (value,)))
    for value in added:
        if value not in explained:
            out.append(Change("label_added", f"{group}: {value!r} added", group, (), (value,)))
    kept_before = [v for v in before if v in after]
    kept_after = [v for v in after if v in before]
    if kept_before != kept_after:
        out.append(Change("labels_reordered", f"{group}: order {kept_before} -> {kept_after}",
                          group))
    return out


def diff_schemas(old: AnnotationSchema, new: AnnotationSchema,
                 moves: Moves | None = None) -> list[Change]:
    """Every change from ``old`` to ``new``, in a stable order."""
    moves = moves or {}
    out: list[Change] = []
    if old.id != new.id:
        out.append(Change("schema_id_changed", f"schema id {old.id!r} -> {new.id!r}"))
    for attr in ("title", "owner", "description"):
        if getattr(old, attr) != getattr(new, attr):
            out.append(Change("metadata_changed", f"{attr} changed"))
    old_types, new_types = _field_types(old), _field_types(new)
    for kind in old_types:
        if kind not in new_types:
            out.append(Change("field_removed", f"field {kind!r} removed"))
    for kind in new_types:
        if kind not in old_types:
            out.append(Change("field_added", f"field {kind!r} added"))

    old_label, new_label = old.label_field, new.label_field
    for group in GROUPS:
        out.extend(_group_changes(old, new, group, moves))
    if isinstance(old_label, LabelField) and isinstance(new_label, LabelField):
        # a verdict value that keeps its name but changes pass/fail meaning
        flipped = sorted(v for v in set(old_label.values) & set(new_label.values)
                         if (v in old_label.failing) != (v in new_label.failing))
        if flipped:
            out.append(Change("failing_changed", f"failing values {old_label.failing} -> "
                              f"{new_label.failing} (changes meaning of {flipped})"))
        if old_label.required != new_label.required:
            out.append(Change("required_changed",
                              f"verdict required {old_label.required} -> {new_label.required}"))
        if old_label.first_failing_step != new_label.first_failing_step:
            out.append(Change("first_failing_step_changed",
                              f"first failing step asked {old_label.first_failing_step} -> "
                              f"{new_label.first_failing_step}"))

    old_fix, new_fix = (next((f for f in s.fields if isinstance(f, CorrectedOutputField)), None)
                        for s in (old, new))
    if old_fix is not None and new_fix is not None \
            and old_fix.required_on_fail != new_fix.required_on_fail:
        out.append(Change("required_changed", "corrected output required on a failing "
                          f"verdict {old_fix.required_on_fail} -> {new_fix.required_on_fail}"))

    old_score, new_score = old.score_field, new.score_field
    if isinstance(old_score, ScoreField) and isinstance(new_score, ScoreField):
        if old_score.scale_id() != new_score.scale_id():
            out.append(Change("score_scale_changed",
                              f"score {old_score.scale_id()} -> {new_score.scale_id()}"))
        elif old_score.step != new_score.step and not new_score.is_rating:
            out.append(Change("score_step_changed",
                              f"score step {old_score.step:g} -> {new_score.step:g}"))

    old_spans, new_spans = old.span_field, new.span_field
    if isinstance(old_spans, SpanField) and isinstance(new_spans, SpanField):
        for target in old_spans.targets:
            if target not in new_spans.targets:
                out.append(Change("span_target_removed", f"span labels no longer on {target}"))
        for target in new_spans.targets:
            if target not in old_spans.targets:
                out.append(Change("span_target_added", f"span labels now also on {target}"))

    names_before, names_after = set(old.rubric), set(new.rubric)
    for name in sorted(names_after - names_before):
        out.append(Change("rubric_added", f"rubric entry {name!r} added"))
    for name in sorted(names_before - names_after):
        out.append(Change("rubric_removed", f"rubric entry {name!r} removed"))
    for name in sorted(names_before & names_after):
        if old.rubric[name] != new.rubric[name]:
            out.append(Change("rubric_reworded", f"rubric entry {name!r} reworded"))
    return out


def is_compatible(changes: list[Change]) -> bool:
    return all(c.compatible for c in changes)


def exit_code(changes: list[Change]) -> int:
    if not changes:
        return EXIT_SAME
    return EXIT_COMPATIBLE if is_compatible(changes) else EXIT_INCOMPATIBLE
