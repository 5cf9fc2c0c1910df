"""The sync job: completed annotations in Label Studio -> AnnotationRecords in the store.

Incremental by the task ``updated_at`` cursor (creating, updating or deleting an
annotation bumps its task's ``updated_at``). Each page of tasks is written in one
transaction together with the cursor that covers it, so a crash at any point followed by
a re-run ends in the same state, and a second run with no changes writes nothing.

Every annotation is one record (several reviewers on a task: one record each, with its
author); cancelled (skipped) annotations and ground-truth flags are kept on the record,
and so is what the reviewer did with the judge's proposal (``records/mapping.py``). In an
adjudication queue (``records/adjudication.py``) the schema owner's annotation is marked
as the adjudication that decides the trace.
An annotation that disappears from its task is marked deleted.

A deleted *task* bumps nothing, so the cursor cannot see it. After paging, one call reads
the project's task count; when Label Studio has fewer tasks than the sync has seen, one
listing of task ids (ids only) finds the missing ones, and their records are marked
deleted. An idle sync is therefore two API calls, whatever the project's size.

The first sync of a project (no cursor yet) with more than one page of tasks reads it
through one snapshot export, Label Studio's own bulk read, instead of paging through the
task list (faster for large projects, see bench/bench_sync.py); it is written in pages
with cursors all the same, then the listing takes over from the moment the export began.
``LS_LLMTRACE_SYNC_FIRST_EXPORT=0`` turns it off.

Exports never pile up in Label Studio. The sync deletes its export whatever happens
(``finally``; SIGTERM is turned into an exception while the export exists), notes each
export in the store as soon as it exists, and at the start of a sync deletes the exports
a killed run left: those noted in the store, and, on a first sync, every export titled
``ls-llmtrace sync <host> pid <pid>`` whose process is gone (same host) or that is older
than :data:`STALE_EXPORT_S` (any host), plus the untitled-by-pid ``ls-llmtrace sync``
ones of earlier versions. A first sync that finds an earlier, interrupted export attempt
in the store pages through the task list instead, each page committed with its cursor:
interrupted again and again, it still keeps every page it finished.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.pairwise import is_pairwise_task
from ls_llmtrace.labelstudio.client import (
    EXPORT_TITLE_PREFIX,
    LabelStudioClient,
    export_owner,
    export_title,
)
from ls_llmtrace.labelstudio.server import pid_alive
from ls_llmtrace.models import (
    AnnotationRecord,
    NotStorable,
    printable,
    storable_body,
    storable_raw,
)
from ls_llmtrace.records.mapping import ResultReject, map_annotation, map_pairwise_annotation
from ls_llmtrace.schema.model import AnnotationSchema, load_schema_dir
from ls_llmtrace.store import Store
from ls_llmtrace.store.engine import Connection
from ls_llmtrace.timeutil import to_utc


@dataclass
class SyncSummary:
    project_id: int
    tasks_seen: int = 0
    records_written: int = 0
    records_deleted: int = 0
    tasks_deleted: int = 0
    rejected: int = 0
    annotations_rejected: int = 0
    requests: int = 0
    exports_removed: int = 0  # exports of crashed runs deleted from Label Studio
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        removed = (f"; {self.exports_removed} exports of interrupted syncs removed"
                   if self.exports_removed else "")
        return (f"project {self.project_id}: {self.tasks_seen} tasks changed, "
                f"{self.records_written} records written, {self.records_deleted} marked deleted "
                f"({self.tasks_deleted} tasks deleted), "
                f"{self.rejected} results kept aside (of them {self.annotations_rejected} "
                f"whole annotations that cannot be mapped) ({self.requests} API calls){removed}")


STALE_EXPORT_S = 3600.0  # an export this old is no live sync's (the wait gives up at 1800 s)



def export_abandoned(title: str, created_at: datetime | None,
                     now: datetime | None = None) -> bool:
    """Whether a sync export (by its title and age) belongs to no running sync."""
    owner = export_owner(title)
    if owner is None:  # "ls-llmtrace sync" alone: made by a version before pids in titles
        return title.strip() == EXPORT_TITLE_PREFIX
    host, pid = owner
    if host == socket.gethostname() and pid != os.getpid() and not pid_alive(pid):
        return True
    age = ((now or datetime.now(UTC)) - created_at).total_seconds() if created_at else 0.0
    return age > STALE_EXPORT_S


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises SystemExit (143) so ``finally`` clauses
    (deleting the export) run; only in the main thread, where signals are delivered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def remove_leftover_exports(client: LabelStudioClient, store: Store, project_id: int,
                            summary: SyncSummary, scan: bool) -> None:
    """Delete the exports crashed runs left in Label Studio: those the store noted (and
    whose run is gone), and with ``scan`` every abandoned sync export of the project."""
    noted = store.sync_exports_left(project_id)
    for export_id, owner, created_at in noted:
        if not export_abandoned(owner, created_at):
            continue
        summary.requests += 1
        if client.delete_export(project_id, export_id):
            summary.exports_removed += 1
        store.mark_sync_export_gone(project_id, export_id)
    if not scan:
        return
    summary.requests += 1
    for export in client.sync_exports(project_id):
        if export_abandoned(export["title"], export["created_at"]):
            summary.requests += 1
            if client.delete_export(project_id, export["id"]):
                summary.exports_removed += 1
            store.mark_sync_export_gone(project_id, export["id"])


def _reject_key(project_id: int, task_id: int, annotation_id: int | None, field_name: str,
                raw: Any) -> str:
    digest = hashlib.sha256(repr((field_name, raw)).encode()).hexdigest()[:16]
    return f"ls:{project_id}:{task_id}:{annotation_id}:{digest}"


@dataclass
class Stored:
    """What writing one annotation changed."""

    written: int = 0  # records inserted or changed
    retired: int = 0  # records of results gone from the annotation, marked deleted
    rejected: int = 0  # results kept aside, with the reason
    annotation_rejected: bool = False  # the whole annotation kept aside (nothing written)


def _mapped(task: dict[str, Any], annotation: dict[str, Any], schema: AnnotationSchema,
            project_id: int, users: dict[int, str] | None, adjudication: bool = False,
            ) -> tuple[list[tuple[AnnotationRecord, str]], list[ResultReject]]:
    """Map one annotation and check every record can be stored and read back (pure).
    A record that cannot becomes a reject like an unusable result."""
    if is_pairwise_task(task):
        mapped = map_pairwise_annotation(task, annotation, schema, project_id, users)
    else:
        mapped = map_annotation(task, annotation, schema, project_id, users, adjudication)
    records: list[tuple[AnnotationRecord, str]] = []
    rejects = list(mapped.rejects)
    for record in mapped.records:
        try:
            records.append((record, storable_body(record)))
        except NotStorable as exc:
            rejects.append(ResultReject(f"(record {record.record_key})", str(exc),
                                        annotation.get("result")))
    return records, rejects


def store_annotation(store: Store, conn: Connection, project_id: int, task: dict[str, Any],
                     annotation: dict[str, Any], schema: AnnotationSchema,
                     users: dict[int, str] | None, adjudication: bool = False) -> Stored:
    """Map one annotation under ``schema`` (a pairwise task's as a preference) and write
    it in the caller's transaction: its records upserted, the records of results it no
    longer has retired, its unusable results kept aside. The sync and the schema
    migration runner both write annotations through here.

    Nothing a Label Studio client stored can stop the batch: an annotation that cannot
    be mapped at all is kept aside whole (field ``(annotation)``, with the reason) and its
    earlier records stay as they were; everything written is checked first to read back.
    """
    task_id, annotation_id = int(task["id"]), int(annotation["id"])
    out = Stored()
    try:
        records, rejects = _mapped(task, annotation, schema, project_id, users,
                                   adjudication)
    except Exception as exc:  # a shape the mapper does not know: this annotation only
        reason = printable(f"the annotation cannot be mapped ({type(exc).__name__}: {exc})")
        raw = storable_raw(annotation)
        store.reject_result(conn, _reject_key(project_id, task_id, annotation_id,
                                              "(annotation)", raw),
                            project_id, task_id, annotation_id, "(annotation)", reason, raw)
        out.rejected += 1
        out.annotation_rejected = True
        return out
    for record, _body in records:
        out.written += store.upsert_record(conn, record)
    # a span removed from an edited annotation retires its record
    out.retired = store.retire_records_except(conn, project_id, annotation_id,
                                              {r.record_key for r, _ in records})
    for reject in rejects:
        raw = storable_raw(reject.raw)
        store.reject_result(
            conn, _reject_key(project_id, task_id, annotation_id, reject.field, raw),
            project_id, task_id, annotation_id, reject.field, reject.reason, raw)
        out.rejected += 1
    return out


def sync_project(
    client: LabelStudioClient,
    store: Store,
    project_id: int,
    schema: AnnotationSchema,
    page_size: int | None = None,
    after_page: Any = None,
    first_export: bool | None = None,
) -> SyncSummary:
    """Sync one project. ``after_page`` is a test hook called after each committed page;
    ``first_export`` (default: settings) reads a never-synced project through a snapshot
    export instead of paging through it."""
    page_size = page_size or settings.sync_page_size()
    summary = SyncSummary(project_id)
    users: dict[int, str] | None = None
    adjudication = store.project_kind(project_id) == "adjudication"
    cursor = store.cursor(project_id)
    remove_leftover_exports(client, store, project_id, summary, scan=cursor is None)
    use_export = cursor is None and (settings.sync_first_export() if first_export is None
                                     else first_export)
    if use_export and store.sync_export_attempts(project_id):
        use_export = False  # an export attempt was interrupted: page, keeping each page
        summary.notes.append("an earlier first sync from an export was interrupted: "
                             "paging through the task list instead")
    if use_export:
        summary.requests += 1
        if client.task_count(project_id) > page_size:  # one page is cheaper as a listing
            cursor, users = _first_sync_from_export(client, store, project_id, schema,
                                                    page_size, summary, after_page,
                                                    adjudication)
    # One page is read ahead while the current one is written: its start (this page's
    # cursor) is known as soon as this page arrives. A crash loses only that uncommitted
    # read; the committed cursor still says where to start again.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmtrace-sync-read") as ahead:
        pending = ahead.submit(client.tasks_page_since, project_id, cursor, page_size)
        while True:
            tasks = pending.result()
            summary.requests += 1
            if not tasks:
                break
            full_page = len(tasks) >= page_size
            if full_page:
                # Tasks sharing the last timestamp may continue on the next page; leave
                # them for it, since the next page starts strictly after our cursor.
                last = to_utc(tasks[-1].get("updated_at"))
                head = [t for t in tasks if to_utc(t.get("updated_at")) != last]
                if head:
                    tasks = head
                else:
                    summary.notes.append(f"{len(tasks)} tasks share updated_at {last}; "
                                         "raise the page size if some were missed")
            newest: datetime | None = to_utc(tasks[-1].get("updated_at"))
            if full_page:
                pending = ahead.submit(client.tasks_page_since, project_id, newest or cursor,
                                       page_size)
            if users is None and any(t.get("annotations") for t in tasks):
                users = client.users()
                summary.requests += 1
            _write_page(store, project_id, schema, tasks, users, newest, summary,
                        adjudication)
            if newest is not None:
                cursor = newest
            summary.tasks_seen += len(tasks)
            if after_page is not None:
                after_page(summary)
            if not full_page:
                break
    _sync_deleted_tasks(client, store, project_id, summary)
    store.forget_sync_exports(project_id)
    return summary


def sync_all(
    client: LabelStudioClient,
    store: Store,
    schemas: dict[tuple[str, int], AnnotationSchema] | None = None,
    project_ids: list[int] | None = None,
    schema_dir: Path | None = None,
) -> list[SyncSummary]:
    """Sync every project the store knows (or those of ``project_ids``), each with the
    schema of its version: from ``schemas``, else the files of ``schema_dir`` (default
    settings.schema_dir()). A project whose schema is missing is an error naming both,
    raised before anything is synced."""
    directory = schema_dir or settings.schema_dir()
    if schemas is None:
        schemas = load_schema_dir(directory) if directory.is_dir() else {}
    projects = [p for p in store.projects()
                if not project_ids or p["project_id"] in project_ids]
    missing = [p for p in projects if (p["schema_id"], p["schema_version"]) not in schemas]
    if missing:
        names = "; ".join(f"project {p['project_id']} ({p['title']}) needs schema "
                          f"{p['schema_id']}@v{p['schema_version']}" for p in missing)
        raise ConfigError(f"cannot sync: {names}, and {directory} has no such schema file "
                          f"(expected {missing[0]['schema_id']}.v{missing[0]['schema_version']}"
                          ".yaml): pass --schemas DIR or set LS_LLMTRACE_SCHEMA_DIR")
    return [sync_project(client, store, p["project_id"],
                         schemas[(p["schema_id"], p["schema_version"])]) for p in projects]


def _by_time(task: dict[str, Any]) -> tuple[datetime, int]:
    return (to_utc(task.get("updated_at")) or datetime.min.replace(tzinfo=UTC), int(task["id"]))


def _first_sync_from_export(
    client: LabelStudioClient, store: Store, project_id: int, schema: AnnotationSchema,
    page_size: int, summary: SyncSummary, after_page: Any, adjudication: bool = False,
) -> tuple[datetime | None, dict[int, str] | None]:
    """First sync of a project from one snapshot export, written in pages (oldest first,
    equal timestamps never split) each with its cursor, exactly like listed pages.

    A page's cursor is never later than the moment the export began: anything changed
    after that moment has a later ``updated_at`` and is read again by the listing that
    follows. Returns the cursor reached and the users map.
    """
    def gone(export_id: int) -> None:
        store.mark_sync_export_gone(project_id, export_id)

    def noted(export_id: int) -> None:
        store.note_sync_export(project_id, export_id, export_title())

    with _sigterm_raises():
        began, tasks, calls = client.snapshot_tasks(project_id, on_created=noted,
                                                    on_deleted=gone)
    summary.requests += calls
    tasks.sort(key=_by_time)
    users: dict[int, str] | None = None
    cursor: datetime | None = None
    start = 0
    while start < len(tasks):
        end = min(start + page_size, len(tasks))
        last = _by_time(tasks[end - 1])[0]
        while end < len(tasks) and _by_time(tasks[end])[0] == last:
            end += 1
        page = tasks[start:end]
        start = end
        if users is None and any(t.get("annotations") for t in page):
            users = client.users()
            summary.requests += 1
        newest = min(_by_time(page[-1])[0], began)
        _write_page(store, project_id, schema, page, users, newest, summary, adjudication)
        cursor = newest
        summary.tasks_seen += len(page)
        if after_page is not None:
            after_page(summary)
    return cursor, users


def _write_page(store: Store, project_id: int, schema: AnnotationSchema,
                tasks: list[dict[str, Any]], users: dict[int, str] | None,
                newest: datetime | None, summary: SyncSummary,
                adjudication: bool = False) -> None:
    """One page of tasks and the cursor that covers it, in one transaction."""
    with store.transaction() as conn:
        for task in tasks:
            task_id = int(task["id"])
            current: set[int] = set()
            for annotation in task.get("annotations") or []:
                current.add(int(annotation["id"]))
                stored = store_annotation(store, conn, project_id, task, annotation, schema,
                                          users, adjudication)
                summary.records_written += stored.written
                summary.records_deleted += stored.retired
                summary.rejected += stored.rejected
                summary.annotations_rejected += stored.annotation_rejected
            for gone in store.live_annotation_ids(conn, project_id, task_id) - current:
                summary.records_deleted += store.mark_annotation_deleted(conn, project_id, gone)
        store.remember_synced_tasks(conn, project_id, [int(t["id"]) for t in tasks])
        if newest is not None:
            store.set_cursor(conn, project_id, newest)


def _sync_deleted_tasks(client: LabelStudioClient, store: Store, project_id: int,
                        summary: SyncSummary) -> None:
    """Mark the records of tasks deleted in Label Studio as deleted."""
    in_label_studio = client.task_count(project_id)
    summary.requests += 1
    if in_label_studio >= store.synced_task_count(project_id):
        return
    existing = set(client.task_ids(project_id))
    summary.requests += 1
    gone = store.synced_task_ids(project_id) - existing
    with store.transaction() as conn:
        for task_id in sorted(gone):
            summary.records_deleted += store.forget_deleted_task(conn, project_id, task_id)
    summary.tasks_deleted += len(gone)
