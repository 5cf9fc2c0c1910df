"""Schema migrations, the pure part: the migration file, its check against two schema
versions, and where each old value goes.

A migration file (YAML) names how old values map to new ones::

    schema: default
    from_version: 1
    to_version: 2
    steps:
      - rename: {field: categories, from: hallucination, to: fabrication}
      - merge: {field: categories, from: [incomplete, truncated], to: incomplete_answer}
      - split: {field: categories, from: wrong, otherwise: null,   # null: review queue
                rules: [{to: wrong_number, explanation_matches: "\\\\d"}]}
      - drop: {field: categories, value: other, into: off_topic}  # into: null removes it
      - drop_field: {type: explanation}
      - rescale_score: {}                                          # scales from the schemas
    accept: [failing_changed]                                      # taken as they are

``field`` is a value group: ``verdict``, ``categories`` or ``spans``.

Applying a migration to Label Studio results is ``labelstudio/rewrite.py`` (pure, on the
result codec); running it against a project and the store is ``records/migrate.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import regex
from pydantic import Field, ValidationError, model_validator

from ls_llmtrace import settings
from ls_llmtrace.errors import MigrationError
from ls_llmtrace.models import FileModel, problems
from ls_llmtrace.schema.diff import Change, Moves, diff_schemas, group_values
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.yamlfiles import parse_yaml_mapping, read_text

Group = Literal["verdict", "categories", "spans"]
REVIEW = None  # a split's `otherwise: null`: the value goes to the review queue


class RenameStep(FileModel):
    field: Group
    from_: str = Field(alias="from")
    to: str


class MergeStep(FileModel):
    field: Group
    from_: list[str] = Field(alias="from", min_length=1)
    to: str


class SplitRule(FileModel):
    """First matching rule wins; every condition given must hold."""

    to: str
    explanation_matches: str | None = Field(None, description="Regex on the explanation.")
    span_text_matches: str | None = Field(None, description="Regex on a span's text.")
    score_below: float | None = Field(None, description="Score (0.0-1.0, old scale) below.")
    score_at_least: float | None = None

    @model_validator(mode="after")
    def _check(self) -> SplitRule:
        patterns = [self.explanation_matches, self.span_text_matches]
        if all(v is None for v in [*patterns, self.score_below, self.score_at_least]):
            raise ValueError(f"rule for {self.to!r} has no condition")
        for pattern in patterns:
            if pattern is not None:
                try:
                    regex.compile(pattern)
                except regex.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return self


class SplitStep(FileModel):
    field: Group
    from_: str = Field(alias="from")
    rules: list[SplitRule] = Field(min_length=1)
    otherwise: str | None = Field(
        None, description="Value when no rule matches; null puts it in the review queue."
    )


class DropStep(FileModel):
    field: Group
    value: str
    into: str | None = Field(None, description="Another label; null removes the value.")


class DropFieldStep(FileModel):
    type: Literal["score", "explanation", "corrected_output", "spans"]


class RescaleStep(FileModel):
    """Rescale the score between the two schemas' scales (number 0-1, rating 1-N)."""


class Step(FileModel):
    rename: RenameStep | None = None
    merge: MergeStep | None = None
    split: SplitStep | None = None
    drop: DropStep | None = None
    drop_field: DropFieldStep | None = None
    rescale_score: RescaleStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _one(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and len(raw) != 1:
            raise ValueError("a step has exactly one action, got "
                             f"{sorted(str(k) for k in raw) or 'none'}")
        if isinstance(raw, dict) and "rescale_score" in raw and raw["rescale_score"] in (None,
                                                                                        True):
            raw = {"rescale_score": {}}
        return raw


class Migration(FileModel):
    """A migration file: how the values of one schema version map to the next."""

    schema_id: str = Field(alias="schema")
    from_version: int = Field(ge=1)
    to_version: int = Field(ge=2)
    description: str = ""
    steps: list[Step] = Field(default_factory=list)
    accept: list[Literal["failing_changed"]] = Field(
        default_factory=list, description="Incompatible changes taken as they are."
    )
    name: str = Field("", exclude=True, description="File name (set when loaded).")

    def moves(self) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
        out: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        for i, step in enumerate(self.steps):
            entries: list[tuple[str, str, str, tuple[str, ...]]] = []
            if step.rename:
                entries.append((step.rename.field, step.rename.from_, "rename",
                                (step.rename.to,)))
            if step.merge:
                entries += [(step.merge.field, v, "merge", (step.merge.to,))
                            for v in step.merge.from_ if v != step.merge.to]
            if step.split:
                split_targets = [r.to for r in step.split.rules]
                if step.split.otherwise is not None:
                    split_targets.append(step.split.otherwise)
                entries.append((step.split.field, step.split.from_, "split",
                                tuple(dict.fromkeys(split_targets))))
            if step.drop:
                entries.append((step.drop.field, step.drop.value, "drop",
                                (step.drop.into,) if step.drop.into else ()))
            for group, value, how, targets in entries:
                if (group, value) in out:
                    raise MigrationError(f"{self.name}: steps.{i}: {group} value {value!r} "
                                         "is moved by two steps; keep one")
                out[(group, value)] = (how, targets)
        return out

    @property
    def rescale(self) -> bool:
        return any(s.rescale_score is not None for s in self.steps)

    @property
    def dropped_fields(self) -> set[str]:
        return {s.drop_field.type for s in self.steps if s.drop_field}

    def split_rules(self) -> dict[tuple[str, str], SplitStep]:
        return {(s.split.field, s.split.from_): s.split for s in self.steps if s.split}

    def sha(self) -> str:
        text = self.model_dump_json(by_alias=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_migration(old: AnnotationSchema, new: AnnotationSchema) -> Migration:
    """The migration of a compatible change: values stay, records are re-versioned."""
    return Migration.model_validate({
        "schema": new.id, "from_version": old.version, "to_version": new.version,
        "name": "(compatible: no value changes)"})


def parse_migration(text: str, origin: str = "<string>") -> Migration:
    raw = parse_yaml_mapping(text, origin, MigrationError, "migration")
    try:
        migration = Migration.model_validate(raw)
    except ValidationError as exc:
        raise MigrationError(f"{origin}: invalid migration: {problems(exc)}") from exc
    migration.name = origin
    migration.moves()  # a value moved twice is an error now, not half-way through
    return migration


def load_migration(path: str | Path) -> Migration:
    path = Path(path)
    return parse_migration(read_text(path, MigrationError, "migration file"), str(path))


# --- checking a migration against the two versions ---------------------------------------


def check_migration(migration: Migration, old: AnnotationSchema,
                    new: AnnotationSchema) -> list[Change]:
    """The diff from ``old`` to ``new`` as this migration explains it; raises
    MigrationError if the migration does not fit or leaves an incompatible change open."""
    where = migration.name or "migration"
    if (migration.schema_id, migration.from_version, migration.to_version) != (
            new.id, old.version, new.version):
        raise MigrationError(
            f"{where} migrates {migration.schema_id}@v{migration.from_version} -> "
            f"v{migration.to_version}, but the project is at {old.version_id} and the schema "
            f"pushed is {new.version_id}: give the migration written for these two versions")
    problems: list[str] = []
    moves = migration.moves()
    for (group, value), (how, targets) in moves.items():
        if value not in group_values(old, group):
            problems.append(f"{how} of {group} {value!r}: not a value of {old.version_id}")
        for target in targets:
            if target not in group_values(new, group):
                problems.append(f"{how} of {group} {value!r} into {target!r}: not a value "
                                f"of {new.version_id}")
        if how == "drop" and not targets and group == "verdict":
            problems.append(f"drop of verdict {value!r} needs `into`: every annotation keeps "
                            "a verdict")
    old_score, new_score = old.score_field, new.score_field
    if migration.rescale and not (old_score and new_score
                                  and old_score.scale_id() != new_score.scale_id()):
        problems.append("rescale_score: both versions must have a score on different scales")
    for kind in migration.dropped_fields:
        if not old.has(kind):
            problems.append(f"drop_field {kind!r}: {old.version_id} has no such field")
        elif new.has(kind):
            problems.append(f"drop_field {kind!r}: {new.version_id} still has it")
    changes = diff_schemas(old, new, moves)
    for change in changes:
        if change.compatible:
            continue
        if change.kind in ("label_renamed", "labels_merged", "label_split", "label_dropped"):
            if all((change.group or "", v) in moves for v in change.old):
                continue
            problems.append(f"{change.detail}: add a rename step for it")
        elif change.kind == "label_removed":
            problems.append(f"{change.detail}: say where its annotations go (rename, merge, "
                            "split or drop)")
        elif change.kind == "score_scale_changed":
            if not migration.rescale:
                problems.append(f"{change.detail}: add `rescale_score: {{}}`")
        elif change.kind == "field_removed":
            kind = change.detail.split("'")[1]
            if kind not in migration.dropped_fields:
                problems.append(f"{change.detail}: add `drop_field: {{type: {kind}}}`")
        elif change.kind == "failing_changed":
            if "failing_changed" not in migration.accept:
                problems.append(f"{change.detail}: rename the value, or list failing_changed "
                                "under `accept`")
        else:
            problems.append(f"{change.detail}: no migration step can do this yet")
    if problems:
        raise MigrationError(f"{where} does not fit {old.version_id} -> {new.version_id}: "
                             + "; ".join(problems))
    return changes


# --- where one annotation's values go ------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What a split rule looks at: the annotation's explanation and its score (0.0-1.0,
    on the old version's scale)."""

    explanation: str = ""
    score: float | None = None


@dataclass
class Moved:
    """The values of one result after the migration; ``reviews`` are (value, reason)
    pairs no rule could place (a person decides)."""

    values: list[str]
    changes: list[str] = field(default_factory=list)
    reviews: list[tuple[str, str]] = field(default_factory=list)


def _matches(pattern: str, text: str, where: str, what: str) -> bool:
    """``pattern`` searched in ``text`` with the ``regex`` package's time limit: a pattern
    that backtracks catastrophically (``(a+)+$``) stops the run with an error naming it,
    instead of hanging it (Python's ``re`` has no time limit)."""
    limit = settings.regex_timeout_s()
    try:
        return regex.search(pattern, text, timeout=limit) is not None
    except TimeoutError as exc:
        raise MigrationError(
            f"{where}: {what} {pattern!r} took longer than {limit:g} s on a "
            f"{len(text)}-character text (catastrophic backtracking): simplify it, or raise "
            "LS_LLMTRACE_REGEX_TIMEOUT_S") from exc


def _split(step: SplitStep, evidence: Evidence, span_text: str | None,
           where: str = "migration") -> str | None:
    for rule in step.rules:
        checks = []
        if rule.explanation_matches is not None:
            checks.append(_matches(rule.explanation_matches, evidence.explanation, where,
                                   "explanation_matches"))
        if rule.span_text_matches is not None:
            checks.append(span_text is not None
                          and _matches(rule.span_text_matches, span_text, where,
                                       "span_text_matches"))
        if rule.score_below is not None:
            checks.append(evidence.score is not None and evidence.score < rule.score_below)
        if rule.score_at_least is not None:
            checks.append(evidence.score is not None and evidence.score >= rule.score_at_least)
        if all(checks):
            return rule.to
    return step.otherwise


def move_values(migration: Migration, group: Group, values: Iterable[str],
                evidence: Evidence, span_text: str | None = None) -> Moved:
    """The values of one result of ``group`` under the new version (pure). A value no
    step moves stays; a split value no rule places goes to the review queue."""
    moves: Moves = migration.moves()
    splits = migration.split_rules()
    out = Moved(values=[])
    for item in values:
        move = moves.get((group, item))
        if move is None:
            out.values.append(item)
            continue
        how, targets = move
        if how == "split":
            target = _split(splits[(group, item)], evidence, span_text,
                            migration.name or "migration")
            if target is REVIEW:
                out.reviews.append((item, f"no split rule of {group} {item!r} matched: "
                                          "choose one of " + str(list(targets))))
                out.changes.append(f"{group}: {item!r} -> review queue")
                continue
            new_values: tuple[str, ...] = (target,)
        else:
            new_values = targets
        out.values.extend(new_values)
        out.changes.append(f"{group}: {item!r} -> " + (
            repr(new_values[0]) if new_values else "(removed)"))
    out.values = list(dict.fromkeys(out.values))
    return out
