"""The sync job: completed annotations in Label Studio -> AnnotationRecords in the store.

Incremental by the task ``updated_at`` cursor (creating, updating or deleting an
annotation bumps its task's ``updated_at``). Each page of tasks is written in one
transaction together with the cursor that covers it, so a crash at any point followed by
a re-run ends in the same state, and a second run with no changes writes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .lsclient import LabelStudioClient
from .mapping import map_annotation
from .pairwise import is_pairwise_task, map_pairwise_annotation
from .schema import AnnotationSchema
from .store import Store
from .timeutil import to_utc


@dataclass
class SyncSummary:
    project_id: int
    tasks_seen: int = 0
    records_written: int = 0
    records_deleted: int = 0
    rejected: int = 0
    requests: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"project {self.project_id}: {self.tasks_seen} tasks changed, "
                f"{self.records_written} records written, {self.records_deleted} marked deleted, "
                f"{self.rejected} results kept aside ({self.requests} API calls)")


def _reject_key(project_id: int, task_id: int, annotation_id: int | None, field_name: str,
                raw: Any) -> str:
    digest = hashlib.sha256(repr((field_name, raw)).encode()).hexdigest()[:16]
    return f"ls:{project_id}:{task_id}:{annotation_id}:{digest}"


def sync_project(
    client: LabelStudioClient,
    store: Store,
    project_id: int,
    schema: AnnotationSchema,
    page_size: int = 500,
    after_page: Any = None,
) -> SyncSummary:
    """Sync one project. ``after_page`` is a test hook called after each committed page."""
    summary = SyncSummary(project_id)
    users: dict[int, str] | None = None
    cursor = store.cursor(project_id)
    while True:
        tasks = client.tasks_page_since(project_id, cursor, limit=page_size)
        summary.requests += 1
        if not tasks:
            break
        full_page = len(tasks) >= page_size
        if full_page:
            # Tasks sharing the last timestamp may continue on the next page; leave them
            # for it, since the next page starts strictly after the cursor we commit.
            last = to_utc(tasks[-1].get("updated_at"))
            head = [t for t in tasks if to_utc(t.get("updated_at")) != last]
            if head:
                tasks = head
            else:
                summary.notes.append(f"{len(tasks)} tasks share updated_at {last}; "
                                     "raise the page size if some were missed")
        if users is None and any(t.get("annotations") for t in tasks):
            users = client.users()
            summary.requests += 1
        with store.transaction() as conn:
            for task in tasks:
                task_id = int(task["id"])
                current: set[int] = set()
                for annotation in task.get("annotations") or []:
                    current.add(int(annotation["id"]))
                    mapper = map_pairwise_annotation if is_pairwise_task(task) else \
                        map_annotation  # issue 4 hook: pairwise tasks map to preferences
                    mapped = mapper(task, annotation, schema, project_id, users)
                    for record in mapped.records:
                        summary.records_written += store.upsert_record(conn, record)
                    for reject in mapped.rejects:
                        store.reject_result(
                            conn, _reject_key(project_id, task_id, int(annotation["id"]),
                                              reject.field, reject.raw),
                            project_id, task_id, int(annotation["id"]), reject.field,
                            reject.reason, reject.raw)
                        summary.rejected += 1
                for gone in store.live_annotation_ids(conn, project_id, task_id) - current:
                    summary.records_deleted += store.mark_annotation_deleted(conn, project_id, gone)
            newest: datetime | None = to_utc(tasks[-1].get("updated_at"))
            if newest is not None:
                cursor = newest
                store.set_cursor(conn, project_id, newest)
        summary.tasks_seen += len(tasks)
        if after_page is not None:
            after_page(summary)
        if not full_page:
            break
    return summary
