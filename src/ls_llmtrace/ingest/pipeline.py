"""The loop's steps as library functions; the CLI and the demo only call these."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.ingest.importers import ImportSummary, Rejected, read_any
from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
from ls_llmtrace.models import Trace
from ls_llmtrace.records.sync import SyncSummary, sync_project
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store


def push_schema(client: LabelStudioClient, store: Store, schema: AnnotationSchema,
                queue: str = "review") -> tuple[int, bool]:
    project_id, created = client.push_schema(schema, queue)
    store.remember_project(project_id, queue, schema.id, schema.version,
                           project_title(schema, queue))
    return project_id, created


def project_for(client: LabelStudioClient, store: Store, schema: AnnotationSchema,
                queue: str = "review") -> int:
    """The project of (queue, schema version), created if missing."""
    project_id = client.find_project(project_title(schema, queue))
    if project_id is None:
        project_id, _ = push_schema(client, store, schema, queue)
    else:
        store.remember_project(project_id, queue, schema.id, schema.version,
                               project_title(schema, queue))
    return project_id


def reconcile_tasks(client: LabelStudioClient, store: Store, project_id: int) -> int:
    """Record tasks Label Studio has that the ledger lacks (e.g. after a crash mid-import)."""
    pairs = list(client.task_trace_ids(project_id, store.max_task_id(project_id)))
    store.record_tasks(project_id, pairs)
    return len(pairs)


@dataclass
class ImportResult:
    summary: ImportSummary
    project_id: int


def import_traces(
    client: LabelStudioClient,
    store: Store,
    items: Iterable[Trace | list[Rejected]],
    schema: AnnotationSchema,
    queue: str = "review",
    batch_size: int = 1000,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportResult:
    """Import traces as tasks, in batches, never twice for the same trace in a project."""
    project_id = project_for(client, store, schema, queue)
    reconcile_tasks(client, store, project_id)
    known = store.known_trace_ids(project_id)
    summary = ImportSummary()
    batch: list[Trace] = []

    def flush() -> None:
        if not batch:
            return
        store.upsert_traces(batch)
        task_ids = client.import_tasks(project_id, [trace_to_task(t, schema) for t in batch])
        if len(task_ids) == len(batch):
            store.record_tasks(project_id, zip(task_ids, [t.trace_id for t in batch],
                                               strict=True))
        else:  # Label Studio did not return ids: read back what it created
            reconcile_tasks(client, store, project_id)
        summary.imported += len(batch)
        known.update(t.trace_id for t in batch)
        batch.clear()
        if progress:
            progress(summary)

    in_batch: set[str] = set()
    for item in items:
        summary.read += 1
        if isinstance(item, list):
            summary.rejected.extend(item)
            continue
        if item.trace_id in known or item.trace_id in in_batch:
            summary.duplicates += 1
            continue
        batch.append(item)
        in_batch.add(item.trace_id)
        if len(batch) >= batch_size:
            flush()
            in_batch.clear()
    flush()
    return ImportResult(summary, project_id)


def import_file(client: LabelStudioClient, store: Store, path: Path, schema: AnnotationSchema,
                queue: str = "review", batch_size: int = 1000,
                progress: Callable[[ImportSummary], None] | None = None) -> ImportResult:
    return import_traces(client, store, read_any(path), schema, queue, batch_size, progress)


def predict(client: LabelStudioClient, project_id: int, backend_url: str,
            basic_auth: tuple[str, str] | None = None) -> int:
    """Connect the backend (once) and ask Label Studio to retrieve predictions."""
    backend_id = client.connect_backend(project_id, backend_url, basic_auth=basic_auth)
    client.retrieve_predictions(project_id)
    return backend_id


def sync(client: LabelStudioClient, store: Store, schemas: dict[tuple[str, int], AnnotationSchema],
         project_ids: list[int] | None = None) -> list[SyncSummary]:
    """Sync every known project whose schema version is in ``schemas``."""
    out = []
    for project in store.projects():
        if project_ids and project["project_id"] not in project_ids:
            continue
        schema = schemas.get((project["schema_id"], project["schema_version"]))
        if schema is None:
            continue
        out.append(sync_project(client, store, project["project_id"], schema))
    return out
