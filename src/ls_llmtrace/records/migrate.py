"""Schema migrations, the runner: move a queue's Label Studio project from one schema
version to the next, rewriting its annotations and re-mapping its stored records.

How a project moves to a new version (decided here): **in place**. The queue keeps its
Label Studio project; its annotations are rewritten (``labelstudio/rewrite.py``), its
stored records re-mapped under the new version, and then its title, config and
instructions move to the new version. Annotations go first because Label Studio refuses
a config that drops a control existing annotations still use (HTTP 400; TextArea
controls are exempt from that check), and silently accepts one that drops a label value
(old annotations would keep it): after the rewrite no annotation uses anything the new
config lacks, so both cases are safe. Tasks keep the ``schema_version`` they were
imported with in ``data``/``meta``; the project's version (in the store) is the one the
sync checks results against.

Crash safety: the plan (every annotation's old and new result) is journaled in the store
(``store/journal.py``) in one transaction before anything is written to Label Studio;
each annotation is then rewritten and its records stored with a done-marker in one store
transaction. A re-run resumes the journaled plan (never re-plans from half-migrated
data), so nothing is applied twice; annotations created after planning are added to the
plan; an annotation edited by someone after it was planned is not overwritten but put in
the review queue. The run row, once ``done``, is the log entry of the applied migration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ls_llmtrace.errors import MigrationError, MigrationRequired
from ls_llmtrace.ingest import queues
from ls_llmtrace.ingest.convert import screen_keys
from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
from ls_llmtrace.labelstudio.rewrite import count_orphans, rewrite_result
from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.records.sync import store_annotation
from ls_llmtrace.schema.diff import Change, diff_schemas, group_values
from ls_llmtrace.schema.migration import Migration, check_migration, identity_migration
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store
from ls_llmtrace.store.journal import (
    MigrationReview,
    MigrationRun,
    PlannedItem,
    canonical_json,
)

# Called as ``(n, "written")`` after the n-th annotation of a run is written to Label
# Studio (before its done-marker) and ``(n, "done")`` after its done-marker.
AfterItem = Callable[[int, str], None]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _annotations(tasks: Iterable[dict[str, Any]]) -> dict[int, tuple[dict[str, Any], dict[str,
                                                                                       Any]]]:
    out = {}
    for task in tasks:
        for annotation in task.get("annotations") or []:
            out[int(annotation["id"])] = (task, annotation)
    return out


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
    tasks_filled: int = 0  # tasks given the review screen's keys (converted before them)
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


def run_id_for(project_id: int, old: AnnotationSchema, new: AnnotationSchema) -> str:
    return f"{project_id}:{old.version_id}->{new.version_id}"


def _plan_item(task: dict[str, Any], annotation: dict[str, Any], old: AnnotationSchema,
               new: AnnotationSchema, migration: Migration,
               summary: MigrationSummary) -> PlannedItem:
    rewrite = rewrite_result(annotation.get("result") or [], old, new, migration)
    summary.changes.update(rewrite.changes)
    changed = canonical_json(rewrite.result) != canonical_json(annotation.get("result") or [])
    kept = {"task": {"id": task["id"], "data": {"trace_id": (task.get("data") or {}).get(
        "trace_id") or (task.get("meta") or {}).get("trace_id")}}, "annotation": annotation}
    return PlannedItem(int(annotation["id"]), int(task["id"]), kept, rewrite.result,
                       [r.__dict__ for r in rewrite.reviews], changed)


def migrate_project(
    client: LabelStudioClient,
    store: Store,
    project_id: int,
    queue: str,
    old: AnnotationSchema,
    new: AnnotationSchema,
    migration: Migration | None,
    dry_run: bool = False,
    after_item: AfterItem | None = None,
    nothing_to_orphan: bool = False,
) -> MigrationSummary:
    """Move one project from ``old`` to ``new`` in place (see the module docstring).

    ``migration`` None keeps every value (a compatible change, or an incompatible one the
    caller found orphans nothing: ``nothing_to_orphan``). ``after_item`` is called as
    ``(n, "written")`` after the n-th annotation of this run is written to Label Studio
    (before its done-marker) and ``(n, "done")`` after its done-marker: for progress, or
    to stop the run there (whatever it raises stops the migration; a re-run resumes it).
    """
    if migration is None:
        migration = identity_migration(old, new)
        if not nothing_to_orphan:
            check_migration(migration, old, new)
    else:
        check_migration(migration, old, new)
    run_id = run_id_for(project_id, old, new)
    summary = MigrationSummary(run_id, project_id, old.version_id, new.version_id)
    run = store.migration_run(run_id)
    if run is not None and run.status == "done":
        summary.status = "already_done"
        return summary
    if run is not None and run.migration_sha != migration.sha():
        raise MigrationError(
            f"a different migration ({run.migration_name}) is half-applied to project "
            f"{project_id}: re-run `schema push` with that file to finish it first")

    current = _annotations(client.all_tasks(project_id))
    planned = store.migration_planned_ids(run_id) if run is not None else set()
    new_items = [_plan_item(task, annotation, old, new, migration, summary)
                 for aid, (task, annotation) in sorted(current.items()) if aid not in planned]
    if dry_run:
        summary.annotations = len(planned) + len(new_items)
        summary.rewritten = sum(1 for item in new_items if item.changed)
        summary.unchanged = len(new_items) - summary.rewritten
        summary.reviews = sum(len(item.reviews) for item in new_items)
        return summary
    with store.transaction() as conn:  # the plan, journaled before any write to LS
        if run is None:
            store.start_migration_run(conn, MigrationRun(
                run_id, project_id, queue, new.id, old.version, new.version, migration.name,
                migration.sha(), planned_at=_now()))
        store.plan_migration_items(conn, run_id, new_items)

    users = client.users()
    for applied, item in enumerate(store.migration_pending(run_id), start=1):
        def report(stage: str, n: int = applied) -> None:
            if after_item is not None:
                after_item(n, stage)

        summary.records_written += _apply_item(client, store, run_id, project_id, new, item,
                                               current, users, report)
        report("done")

    # Every annotation is in v2 terms now: the config can drop what v1 had.
    client.set_project_schema(project_id, new, queue)
    summary.tasks_filled = fill_screen_keys(client, project_id)
    outcomes = store.migration_outcomes(run_id)
    summary.rewritten = outcomes["rewritten"] + outcomes["already"]
    summary.unchanged = outcomes["unchanged"]
    summary.conflicts = outcomes["conflict"]
    summary.skipped_deleted = outcomes["deleted"]
    summary.annotations = sum(outcomes.values())
    summary.reviews = len(store.migration_reviews(run_id))
    summary.status = "done"
    # Re-read the project once and map everything under the new version, in the same
    # transaction that records the move: a sync that ran during the migration (still
    # under the old version) cannot leave a stale record behind.
    final = _annotations(client.all_tasks(project_id))
    started = store.migration_run(run_id)
    planned_at = started.planned_at if started is not None and started.planned_at else _now()
    with store.transaction() as conn:
        # results kept aside while the migration ran were judged by the old version
        store.forget_rejects_since(conn, project_id, planned_at)
        for task, annotation in final.values():
            summary.records_written += store_annotation(
                store, conn, project_id, task, annotation, new, users,
                store.project_kind(project_id) == "adjudication").written
        store.upsert_project(conn, project_id, queue, new.id, new.version,
                             project_title(new, queue))
        store.finish_migration_run(conn, run_id, summary.as_dict())
    return summary


def _apply_item(client: LabelStudioClient, store: Store, run_id: str, project_id: int,
                new: AnnotationSchema, item: PlannedItem,
                current: dict[int, tuple[dict[str, Any], dict[str, Any]]],
                users: dict[int, str], report: Callable[[str], None]) -> int:
    """Apply one journaled item; returns how many records changed."""
    aid = item.annotation_id
    task, planned = item.old_annotation["task"], item.old_annotation["annotation"]
    target = item.new_result
    reviews = [MigrationReview(r["field"], r["value"], r["reason"], r["raw"])
               for r in item.reviews]
    now_there = current.get(aid)
    annotation: dict[str, Any] | None
    if now_there is None:
        outcome, annotation = "deleted", None
    else:
        live = now_there[1]
        live_result = canonical_json(live.get("result") or [])
        if live_result == canonical_json(target):
            outcome, annotation = ("already" if item.changed else "unchanged"), live
        elif live_result == canonical_json(planned.get("result") or []):
            annotation = client.update_annotation(aid, target)
            outcome = "rewritten"
            report("written")
        else:  # someone edited it after planning: never overwrite a person's work
            outcome, annotation = "conflict", None
            reviews = [MigrationReview(
                "annotation", "*", "edited after the migration was planned: check it by hand",
                live.get("result") or [])]
    written = 0
    with store.transaction() as conn:
        if annotation is not None:
            stored = store_annotation(store, conn, project_id, task, annotation, new, users,
                                      store.project_kind(project_id) == "adjudication")
            written += stored.written + stored.retired
        for review in reviews:
            store.add_migration_review(conn, run_id, aid, item.task_id, review)
        store.finish_migration_item(conn, run_id, aid, outcome)
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
    tasks_filled: int = 0  # see fill_screen_keys


def fill_screen_keys(client: LabelStudioClient, project_id: int) -> int:
    """Give the project's tasks converted before the review screen's keys existed those
    keys (aligned metadata, which sections they have), so they still show their metadata,
    system prompt and documents under the regenerated config. Idempotent: a task that has
    them is left alone. Returns how many tasks were updated."""
    filled = 0
    for task in client.all_tasks(project_id):
        data = task.get("data")
        if not isinstance(data, dict):
            continue
        missing = screen_keys(data)
        if missing:
            client.update_task_data(int(task["id"]), {**data, **missing})
            filled += 1
    return filled


def _record_orphaned(record: AnnotationRecord, new: AnnotationSchema) -> bool:
    if record.label is not None and record.label not in group_values(new, "verdict"):
        return True
    allowed = (new.step_labels if record.scope.kind == "span"  # a marked agent step
               else group_values(new, "spans" if record.scope.kind == "text_range"
                                 else "categories"))
    if any(v not in allowed for v in record.labels):
        return True
    return record.score is not None and new.score_field is None


def find_queue_project(client: LabelStudioClient, store: Store, queue: str,
                       new: AnnotationSchema) -> tuple[int, int] | None:
    """(project id, current schema version) of the queue, from the queue registry (the
    store, else Label Studio project titles). A queue of another schema is refused."""
    found = queues.resolve(client, store, queue, new.id)
    if found is None:
        return None
    if found.schema_id != new.id:
        queues.check_version(found, new)
    return found.project_id, found.schema_version


def push_schema_version(
    client: LabelStudioClient,
    store: Store,
    new: AnnotationSchema,
    queue: str,
    known: dict[tuple[str, int], AnnotationSchema],
    migration: Migration | None = None,
    dry_run: bool = False,
    after_item: AfterItem | None = None,
) -> PushOutcome:
    """Push a schema version to its queue. A queue whose project is at an older version
    is moved in place: compatible changes directly, incompatible ones only with a
    migration (else MigrationRequired, naming what would be orphaned). The queue
    registry records where the queue is afterwards."""
    found = find_queue_project(client, store, queue, new)
    if found is None or found[1] == new.version:
        if migration is not None and found is None:
            raise MigrationError(f"queue {queue!r} has no project of schema {new.id} to "
                                 "migrate; push without --migration to create it")
        note = None
        if migration is not None and found is not None:
            applied = [r for r in store.applied_migrations() if r["project_id"] == found[0]
                       and r["to_version"] == new.version]
            note = (f"project {found[0]} is already at {new.version_id}"
                    + (f" (migrated {applied[-1]['finished_at']} with "
                       f"{applied[-1]['migration_name']})" if applied else "")
                    + ": the migration has nothing to do")
        if dry_run:
            return PushOutcome(found[0] if found else 0, found is None, note=note)
        project_id, created = client.push_schema(new, queue)
        filled = 0 if created else fill_screen_keys(client, project_id)
        queues.record(store, queues.Queue(queue, project_id, new.id, new.version))
        return PushOutcome(project_id, created, note=note, tasks_filled=filled)
    project_id, version = found
    if version > new.version:
        raise MigrationError(f"queue {queue!r} is at {new.id}@v{version} (project "
                             f"{project_id}), newer than {new.version_id}: schemas only move "
                             f"forward; for a queue at {new.version_id} ask for another "
                             f"queue, e.g. --queue {queue}-v{new.version}")
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
    if not dry_run:
        queues.record(store, queues.Queue(queue, project_id, new.id, new.version))
    return PushOutcome(project_id, False, summary, changes, old.version_id)
