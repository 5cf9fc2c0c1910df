"""Schema migrations: rewrite existing Label Studio annotations and stored records from one
schema version to the next, then move the project to the new config.

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

How a project moves to a new version (decided here): **in place**. The queue keeps its
Label Studio project; its annotations are rewritten, its stored records re-mapped under
the new version, and then its title, config and instructions move to the new version.
Annotations go first because Label Studio refuses a config that drops a control existing
annotations still use (HTTP 400; TextArea controls are exempt from that check), and
silently accepts one that drops a label value (old annotations would keep it): after the
rewrite no annotation uses anything the new config lacks, so both cases are safe. Tasks
keep the ``schema_version`` they were imported with in ``data``/``meta``; the project's
version (in the store) is the one the sync checks results against.

Crash safety: the plan (every annotation's old and new result) is journaled in the store
in one transaction before anything is written to Label Studio; each annotation is then
rewritten and its records stored with a done-marker in one store transaction. A re-run
resumes the journaled plan (never re-plans from half-migrated data), so nothing is applied
twice; annotations created after planning are added to the plan; an annotation edited by
someone after it was planned is not overwritten but put in the review queue. The run row,
once ``done``, is the log entry of the applied migration.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ls_llmtrace.errors import MigrationError, MigrationRequired
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.records.mapping import map_annotation
from ls_llmtrace.records.sync import _reject_key
from ls_llmtrace.schema.diff import Change, Moves, diff_schemas, group_values
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
from ls_llmtrace.store import Store
from ls_llmtrace.yamlfiles import parse_yaml_mapping, problems, read_text

Group = Literal["verdict", "categories", "spans"]
REVIEW = None  # a split's `otherwise: null`: the value goes to the review queue


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RenameStep(_Strict):
    field: Group
    from_: str = Field(alias="from")
    to: str


class MergeStep(_Strict):
    field: Group
    from_: list[str] = Field(alias="from", min_length=1)
    to: str


class SplitRule(_Strict):
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
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return self


class SplitStep(_Strict):
    field: Group
    from_: str = Field(alias="from")
    rules: list[SplitRule] = Field(min_length=1)
    otherwise: str | None = Field(
        None, description="Value when no rule matches; null puts it in the review queue."
    )


class DropStep(_Strict):
    field: Group
    value: str
    into: str | None = Field(None, description="Another label; null removes the value.")


class DropFieldStep(_Strict):
    type: Literal["score", "explanation", "corrected_output", "spans"]


class RescaleStep(_Strict):
    """Rescale the score between the two schemas' scales (number 0-1, rating 1-N)."""


class Step(_Strict):
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
            raise ValueError(f"a step has exactly one action, got {sorted(raw) or 'none'}")
        if isinstance(raw, dict) and "rescale_score" in raw and raw["rescale_score"] in (None,
                                                                                        True):
            raw = {"rescale_score": {}}
        return raw


class Migration(_Strict):
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


# --- the pure rewrite of one annotation --------------------------------------------------

_GROUP_OF = {VERDICT: ("verdict", "choices"), CATEGORIES: ("categories", "choices"),
             ANSWER_SPANS: ("spans", "labels"), MESSAGE_SPANS: ("spans", "paragraphlabels")}
_FIELD_OF = {SCORE: "score", EXPLANATION: "explanation", CORRECTED_OUTPUT: "corrected_output",
             ANSWER_SPANS: "spans", MESSAGE_SPANS: "spans"}


@dataclass
class Review:
    """A value no rule could place: a person decides (the review queue)."""

    field: str
    value: str
    reason: str
    raw: dict[str, Any]


@dataclass
class Rewrite:
    result: list[dict[str, Any]]
    changes: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)


def _text(value: dict[str, Any]) -> str:
    text = value.get("text")
    return "\n".join(map(str, text)) if isinstance(text, list) else str(text or "")


def _context(results: list[dict[str, Any]], old: AnnotationSchema) -> dict[str, Any]:
    ctx: dict[str, Any] = {"explanation": "", "score": None}
    score_field = old.score_field
    for r in results:
        value = r.get("value") or {}
        if r.get("from_name") == EXPLANATION:
            ctx["explanation"] = _text(value)
        elif r.get("from_name") == SCORE and score_field is not None:
            if r.get("type") == "number" and isinstance(value.get("number"), int | float):
                ctx["score"] = float(value["number"])
            elif r.get("type") == "rating" and isinstance(value.get("rating"), int):
                ctx["score"] = score_field.rating_to_score(value["rating"])
    return ctx


def _split(step: SplitStep, ctx: dict[str, Any], span_text: str | None) -> str | None:
    for rule in step.rules:
        checks = []
        if rule.explanation_matches is not None:
            checks.append(bool(re.search(rule.explanation_matches, ctx["explanation"])))
        if rule.span_text_matches is not None:
            checks.append(span_text is not None
                          and bool(re.search(rule.span_text_matches, span_text)))
        if rule.score_below is not None:
            checks.append(ctx["score"] is not None and ctx["score"] < rule.score_below)
        if rule.score_at_least is not None:
            checks.append(ctx["score"] is not None and ctx["score"] >= rule.score_at_least)
        if all(checks):
            return rule.to
    return step.otherwise


def rewrite_result(results: list[dict[str, Any]], old: AnnotationSchema,
                   new: AnnotationSchema, migration: Migration) -> Rewrite:
    """One annotation's result list under ``old`` -> the same under ``new`` (pure).
    Results the old schema does not know (drift) are left exactly as they are."""
    moves: Moves = migration.moves()
    splits = migration.split_rules()
    dropped = migration.dropped_fields
    ctx = _context(results, old)
    out = Rewrite(result=[])
    for result in results:
        if not isinstance(result, dict):
            out.result.append(result)
            continue
        name = str(result.get("from_name"))
        if _FIELD_OF.get(name) in dropped:
            out.changes.append(f"{name}: field dropped")
            continue
        if name == SCORE and migration.rescale:
            out.result.append(_rescale(result, old, new, out))
            continue
        if name not in _GROUP_OF or result.get("type") != _GROUP_OF[name][1]:
            out.result.append(result)
            continue
        group, key = _GROUP_OF[name]
        value = dict(result.get("value") or {})
        span_text = value.get("text") if group == "spans" else None
        mapped: list[str] = []
        for item in value.get(key) or []:
            move = moves.get((group, item))
            if move is None:
                mapped.append(item)
                continue
            how, targets = move
            if how == "split":
                target = _split(splits[(group, item)], ctx, span_text)
                if target is REVIEW:
                    out.reviews.append(Review(group, item, f"no split rule of {group} {item!r} "
                                              "matched: choose one of " + str(list(targets)),
                                              result))
                    out.changes.append(f"{group}: {item!r} -> review queue")
                    continue
                new_values: tuple[str, ...] = (target,)
            else:
                new_values = targets
            mapped.extend(new_values)
            out.changes.append(f"{group}: {item!r} -> " + (
                repr(new_values[0]) if new_values else "(removed)"))
        mapped = list(dict.fromkeys(mapped))
        if not mapped:
            continue  # nothing left of this result (dropped or sent to review)
        value[key] = mapped
        out.result.append({**result, "value": value})
    return out


def _rescale(result: dict[str, Any], old: AnnotationSchema, new: AnnotationSchema,
             out: Rewrite) -> dict[str, Any]:
    old_score, new_score = old.score_field, new.score_field
    value = result.get("value") or {}
    assert old_score is not None and new_score is not None  # checked by check_migration
    if result.get("type") == "number" and not old_score.is_rating:
        score = value.get("number")
    elif result.get("type") == "rating" and old_score.is_rating:
        stars = value.get("rating")
        score = old_score.rating_to_score(stars) if isinstance(stars, int) else None
    else:
        return result
    if isinstance(score, bool) or not isinstance(score, int | float):
        return result  # drift: left for the sync to keep aside
    if new_score.is_rating:
        stars_new = new_score.score_to_rating(float(score))
        out.changes.append(f"score: {score:g} -> {stars_new} star" + "s" * (stars_new != 1))
        return {**result, "type": "rating", "value": {"rating": stars_new}}
    out.changes.append(f"score: {score:g} -> number")
    return {**result, "type": "number", "value": {"number": float(score)}}


def orphaned_values(results: list[dict[str, Any]], new: AnnotationSchema) -> list[str]:
    """What in one annotation the new version has no place for (what it would orphan)."""
    out: list[str] = []
    score_field = new.score_field
    for result in results:
        if not isinstance(result, dict):
            continue
        name = str(result.get("from_name"))
        kind = result.get("type")
        value = result.get("value") or {}
        if name in _GROUP_OF and kind == _GROUP_OF[name][1]:
            group, key = _GROUP_OF[name]
            allowed = group_values(new, group)
            if group == "spans" and new.span_field is not None:
                target = "answer" if name == ANSWER_SPANS else "messages"
                if target not in new.span_field.targets:
                    out.append(f"{name} (span labels no longer on {target})")
                    continue
            out += [f"{group} {v!r}" for v in value.get(key) or [] if v not in allowed]
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


# --- running it against Label Studio and the store ---------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _canon(result: Any) -> str:
    return json.dumps(result, sort_keys=True, ensure_ascii=False)


def _annotations(tasks: Iterable[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], dict[str,
                                                                                       Any]]]:
    out = {}
    for task in tasks:
        for annotation in task.get("annotations") or []:
            out[int(annotation["id"])] = (task, annotation)
    return out


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
    report = OrphanReport()
    for annotation in annotations:
        report.total += 1
        found = orphaned_values(annotation.get("result") or [], new)
        if found:
            report.annotations += 1
            report.values.update(found)
    return report


@dataclass
class MigrationSummary:
    run_id: str
    project_id: int
    from_version: str
    to_version: str
    status: str = "planned"  # planned (dry run) | done | already_done
    annotations: int = 0
    rewritten: int = 0
    unchanged: int = 0
    skipped_deleted: int = 0
    conflicts: int = 0
    reviews: int = 0
    records_written: int = 0
    changes: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        head = (f"{self.status}: project {self.project_id} {self.from_version} -> "
                f"{self.to_version}: {self.annotations} annotations, {self.rewritten} "
                f"rewritten, {self.unchanged} unchanged, {self.reviews} values to the review "
                f"queue, {self.conflicts} edited meanwhile (review queue), "
                f"{self.skipped_deleted} deleted meanwhile, {self.records_written} records "
                "written")
        return [head] + [f"  {n:>5} x {c}" for c, n in sorted(self.changes.items())]

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["changes"] = dict(self.changes)
        return out


class CrashForTest(Exception):
    """Raised by test hooks to stop a migration half-way."""


def run_id_for(project_id: int, old: AnnotationSchema, new: AnnotationSchema) -> str:
    return f"{project_id}:{old.version_id}->{new.version_id}"


class Journal:
    """The store tables of schema migrations (plan, done-markers, review queue, log)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self.store.conn.execute(
            "SELECT * FROM schema_migration_runs WHERE run_id=?", (run_id,)).fetchone()
        return dict(row) if row else None

    def planned_ids(self, run_id: str) -> set[int]:
        rows = self.store.conn.execute(
            "SELECT annotation_id FROM schema_migration_items WHERE run_id=?", (run_id,))
        return {int(r["annotation_id"]) for r in rows}

    def pending(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store.conn.execute(
            "SELECT * FROM schema_migration_items WHERE run_id=? AND done_at IS NULL "
            "ORDER BY annotation_id", (run_id,))
        return [dict(r) for r in rows]

    def outcomes(self, run_id: str) -> Counter[str]:
        rows = self.store.conn.execute(
            "SELECT outcome, COUNT(*) AS n FROM schema_migration_items WHERE run_id=? "
            "GROUP BY outcome", (run_id,))
        return Counter({str(r["outcome"]): int(r["n"]) for r in rows})

    def add_items(self, conn: Any, run_id: str, items: list[tuple[int, int, str, str, str,
                                                                  int]]) -> None:
        conn.executemany(
            "INSERT INTO schema_migration_items (run_id, annotation_id, task_id, "
            "old_annotation, new_result, reviews, changed) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, annotation_id) DO NOTHING",
            [(run_id, *item) for item in items])

    def log(self) -> list[dict[str, Any]]:
        """Applied migrations, oldest first."""
        rows = self.store.conn.execute(
            "SELECT run_id, project_id, queue, schema_id, from_version, to_version, "
            "migration_name, migration_sha, planned_at, finished_at, summary FROM "
            "schema_migration_runs WHERE status='done' ORDER BY finished_at, run_id")
        return [dict(r) for r in rows]

    def reviews(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM schema_migration_reviews"
        args: tuple[Any, ...] = ()
        if run_id:
            sql += " WHERE run_id=?"
            args = (run_id,)
        rows = self.store.conn.execute(sql + " ORDER BY run_id, annotation_id, field, value",
                                       args)
        return [dict(r) for r in rows]


def _plan_item(task: dict[str, Any], annotation: dict[str, Any], old: AnnotationSchema,
               new: AnnotationSchema, migration: Migration,
               summary: MigrationSummary) -> tuple[int, int, str, str, str, int]:
    rewrite = rewrite_result(annotation.get("result") or [], old, new, migration)
    summary.changes.update(rewrite.changes)
    changed = _canon(rewrite.result) != _canon(annotation.get("result") or [])
    kept = {"task": {"id": task["id"], "data": {"trace_id": (task.get("data") or {}).get(
        "trace_id") or (task.get("meta") or {}).get("trace_id")}}, "annotation": annotation}
    reviews = [r.__dict__ for r in rewrite.reviews]
    return (int(annotation["id"]), int(task["id"]), _canon(kept), _canon(rewrite.result),
            _canon(reviews), int(changed))


def migrate_project(
    client: LabelStudioClient,
    store: Store,
    project_id: int,
    queue: str,
    old: AnnotationSchema,
    new: AnnotationSchema,
    migration: Migration | None,
    dry_run: bool = False,
    after_item: Callable[[int, str], None] | None = None,
    nothing_to_orphan: bool = False,
) -> MigrationSummary:
    """Move one project from ``old`` to ``new`` in place (see the module docstring).

    ``migration`` None keeps every value (a compatible change, or an incompatible one the
    caller found orphans nothing: ``nothing_to_orphan``). ``after_item`` is a test hook
    called as ``(n, "written")`` after the n-th annotation of this run is written to Label
    Studio (before its done-marker) and ``(n, "done")`` after its done-marker.
    """
    if migration is None:
        migration = identity_migration(old, new)
        if not nothing_to_orphan:
            check_migration(migration, old, new)
    else:
        check_migration(migration, old, new)
    journal = Journal(store)
    run_id = run_id_for(project_id, old, new)
    summary = MigrationSummary(run_id, project_id, old.version_id, new.version_id)
    run = journal.run(run_id)
    if run is not None and run["status"] == "done":
        summary.status = "already_done"
        return summary
    if run is not None and run["migration_sha"] != migration.sha():
        raise MigrationError(
            f"a different migration ({run['migration_name']}) is half-applied to project "
            f"{project_id}: re-run `schema push` with that file to finish it first")

    current = _annotations(client.all_tasks(project_id))
    planned = journal.planned_ids(run_id) if run is not None else set()
    new_items = [_plan_item(task, annotation, old, new, migration, summary)
                 for aid, (task, annotation) in sorted(current.items()) if aid not in planned]
    if dry_run:
        summary.annotations = len(planned) + len(new_items)
        summary.rewritten = sum(1 for item in new_items if item[5])
        summary.unchanged = len(new_items) - summary.rewritten
        summary.reviews = sum(len(json.loads(item[4])) for item in new_items)
        return summary
    with store.transaction() as conn:  # the plan, journaled before any write to LS
        if run is None:
            conn.execute(
                "INSERT INTO schema_migration_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, project_id, queue, new.id, old.version, new.version, migration.name,
                 migration.sha(), "applying", _now(), None, "{}"))
        journal.add_items(conn, run_id, new_items)

    users = client.users()
    for applied, item in enumerate(journal.pending(run_id), start=1):
        def hook(stage: str, n: int = applied) -> None:
            if after_item is not None:
                after_item(n, stage)

        summary.records_written += _apply_item(client, store, run_id, project_id, new, item,
                                               current, users, hook)
        hook("done")

    # Every annotation is in v2 terms now: the config can drop what v1 had.
    client.set_project_schema(project_id, new, queue)
    outcomes = journal.outcomes(run_id)
    summary.rewritten = outcomes["rewritten"] + outcomes["already"]
    summary.unchanged = outcomes["unchanged"]
    summary.conflicts = outcomes["conflict"]
    summary.skipped_deleted = outcomes["deleted"]
    summary.annotations = sum(outcomes.values())
    summary.reviews = len(journal.reviews(run_id))
    summary.status = "done"
    # Re-read the project once and map everything under the new version, in the same
    # transaction that records the move: a sync that ran during the migration (still
    # under the old version) cannot leave a stale record behind.
    final = _annotations(client.all_tasks(project_id))
    planned_at = (journal.run(run_id) or {}).get("planned_at") or _now()
    with store.transaction() as conn:
        # results kept aside while the migration ran were judged by the old version
        conn.execute("DELETE FROM rejected_results WHERE ls_project_id=? AND seen_at>=?",
                     (project_id, planned_at))
        for aid, (task, annotation) in final.items():
            mapped = map_annotation(task, annotation, new, project_id, users)
            for record in mapped.records:
                summary.records_written += store.upsert_record(conn, record)
            store.retire_records_except(conn, project_id, aid,
                                        {r.record_key for r in mapped.records})
            for reject in mapped.rejects:
                store.reject_result(
                    conn, _reject_key(project_id, int(task["id"]), aid, reject.field,
                                      reject.raw),
                    project_id, int(task["id"]), aid, reject.field, reject.reason, reject.raw)
        conn.execute(
            "INSERT INTO projects VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE "
            "SET queue=excluded.queue, schema_id=excluded.schema_id, "
            "schema_version=excluded.schema_version, title=excluded.title",
            (project_id, queue, new.id, new.version, f"llmtrace {queue} | {new.version_id}"))
        conn.execute("UPDATE schema_migration_runs SET status='done', finished_at=?, "
                     "summary=? WHERE run_id=?",
                     (_now(), json.dumps(summary.as_dict(), sort_keys=True), run_id))
    return summary


def _apply_item(client: LabelStudioClient, store: Store, run_id: str, project_id: int,
                new: AnnotationSchema, item: dict[str, Any],
                current: dict[int, tuple[dict[str, Any], dict[str, Any]]],
                users: dict[int, str], hook: Callable[[str], None]) -> int:
    """Apply one journaled item; returns how many records changed."""
    aid = int(item["annotation_id"])
    kept = json.loads(item["old_annotation"])
    task, planned = kept["task"], kept["annotation"]
    target = json.loads(item["new_result"])
    reviews = json.loads(item["reviews"])
    now_there = current.get(aid)
    annotation: dict[str, Any] | None
    if now_there is None:
        outcome, annotation = "deleted", None
    else:
        live = now_there[1]
        live_result = _canon(live.get("result") or [])
        if live_result == _canon(target):
            outcome, annotation = ("already" if item["changed"] else "unchanged"), live
        elif live_result == _canon(planned.get("result") or []):
            annotation = client.update_annotation(aid, target)
            outcome = "rewritten"
            hook("written")
        else:  # someone edited it after planning: never overwrite a person's work
            outcome, annotation = "conflict", None
            reviews = [{"field": "annotation", "value": "*", "raw": live.get("result") or [],
                        "reason": "edited after the migration was planned: check it by hand"}]
    written = 0
    with store.transaction() as conn:
        if annotation is not None:
            mapped = map_annotation(task, annotation, new, project_id, users)
            keys = set()
            for record in mapped.records:
                written += store.upsert_record(conn, record)
                keys.add(record.record_key)
            written += store.retire_records_except(conn, project_id, aid, keys)
        for review in reviews:
            conn.execute(
                "INSERT INTO schema_migration_reviews VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (run_id, aid, int(item["task_id"]), review["field"], review["value"],
                 review["reason"], _canon(review["raw"])))
        conn.execute("UPDATE schema_migration_items SET outcome=?, done_at=? WHERE run_id=? "
                     "AND annotation_id=?", (outcome, _now(), run_id, aid))
    return written


# --- what `schema push` does ----------------------------------------------------------------


@dataclass
class PushOutcome:
    project_id: int
    created: bool
    migrated: MigrationSummary | None = None
    changes: list[Change] = field(default_factory=list)
    from_version: str | None = None
    note: str | None = None


def _record_orphaned(record: AnnotationRecord, new: AnnotationSchema) -> bool:
    if record.label is not None and record.label not in group_values(new, "verdict"):
        return True
    group = "spans" if record.scope.kind == "text_range" else "categories"
    if any(v not in group_values(new, group) for v in record.labels):
        return True
    return record.score is not None and new.score_field is None


def find_queue_project(client: LabelStudioClient, store: Store, queue: str,
                       new: AnnotationSchema) -> tuple[int, int] | None:
    """(project id, schema version) of the queue's project of this schema id, newest
    version first: from the store, else by Label Studio project title."""
    rows = [p for p in store.projects() if p["queue"] == queue and p["schema_id"] == new.id]
    if rows:
        best = max(rows, key=lambda p: (p["schema_version"], p["project_id"]))
        return int(best["project_id"]), int(best["schema_version"])
    for version in range(new.version, 0, -1):
        project_id = client.find_project(f"llmtrace {queue} | {new.id}@v{version}")
        if project_id is not None:
            return project_id, version
    return None


def push_schema_version(
    client: LabelStudioClient,
    store: Store,
    new: AnnotationSchema,
    queue: str,
    known: dict[tuple[str, int], AnnotationSchema],
    migration: Migration | None = None,
    dry_run: bool = False,
    after_item: Callable[[int, str], None] | None = None,
) -> PushOutcome:
    """Push a schema version to its queue. A queue whose project is at an older version
    is moved in place: compatible changes directly, incompatible ones only with a
    migration (else MigrationRequired, naming what would be orphaned)."""
    from ls_llmtrace.ingest.pipeline import push_schema

    found = find_queue_project(client, store, queue, new)
    if found is None or found[1] == new.version:
        if migration is not None and found is None:
            raise MigrationError(f"queue {queue!r} has no project of schema {new.id} to "
                                 "migrate; push without --migration to create it")
        note = None
        if migration is not None and found is not None:
            applied = [r for r in Journal(store).log() if r["project_id"] == found[0]
                       and r["to_version"] == new.version]
            note = (f"project {found[0]} is already at {new.version_id}"
                    + (f" (migrated {applied[-1]['finished_at']} with "
                       f"{applied[-1]['migration_name']})" if applied else "")
                    + ": the migration has nothing to do")
        if dry_run:
            return PushOutcome(found[0] if found else 0, found is None, note=note)
        project_id, created = push_schema(client, store, new, queue)
        return PushOutcome(project_id, created, note=note)
    project_id, version = found
    if version > new.version:
        raise MigrationError(f"project {project_id} of queue {queue!r} is at {new.id}@v"
                             f"{version}, newer than {new.version_id}: schemas only move "
                             "forward")
    old = known.get((new.id, version))
    if old is None:
        raise MigrationError(f"project {project_id} is at {new.id}@v{version} but no schema "
                             f"file of that version was found beside the new one: keep old "
                             "versions in label_configs/")
    changes = diff_schemas(old, new, migration.moves() if migration else None)
    if migration is None and not all(c.compatible for c in changes):
        annotations = [a for _, a in _annotations(client.all_tasks(project_id)).values()]
        orphans = count_orphans(annotations, new)
        records = sum(1 for r in store.records() if r.ls_project_id == project_id
                      and r.schema_version == old.version and _record_orphaned(r, new))
        if orphans.annotations or records:
            incompatible = "; ".join(c.detail for c in changes if not c.compatible)
            raise MigrationRequired(
                f"refusing to push {new.version_id} over project {project_id} "
                f"({old.version_id}): incompatible ({incompatible}); {orphans.line()}; "
                f"{records} stored records would be orphaned. Write a migration file "
                "and pass it with --migration (try --dry-run first)")
    summary = migrate_project(client, store, project_id, queue, old, new, migration,
                              dry_run=dry_run, after_item=after_item,
                              nothing_to_orphan=migration is None)
    return PushOutcome(project_id, False, summary, changes, old.version_id)
