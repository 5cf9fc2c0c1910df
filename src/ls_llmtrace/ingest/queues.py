"""The queue registry: a review queue has one Label Studio project and one current schema
version.

The store's ``queues`` table says where each queue is. A queue the store does not know
yet is looked up in Label Studio by its project title, ``llmtrace <queue> | <id>@v<n>``
(the newest version wins), and then recorded. Commands resolve a queue to its current
version by default (the schema file of that version is read from the schema directory);
asking for an older version of a queue is refused instead of creating a twin project,
and a version move is recorded by ``schema push``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, LabelStudioError
from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
from ls_llmtrace.schema.labelconfig import build_instructions, build_label_config
from ls_llmtrace.schema.model import (
    AnnotationSchema,
    find_schema_version,
    load_schema,
)
from ls_llmtrace.store import Store

_TITLE = re.compile(r"^llmtrace (?P<queue>.+) \| (?P<schema>[^|@\s]+)@v(?P<version>\d+)$")
PAIRWISE_PREFIX = "ls-llmtrace pairwise queue"
ADJUDICATION_PREFIX = "ls-llmtrace adjudication queue"


@dataclass(frozen=True)
class Queue:
    """Where a queue is: its project and the schema version it is at."""

    name: str
    project_id: int
    schema_id: str
    schema_version: int
    kind: str = "review"

    @property
    def version_id(self) -> str:
        return f"{self.schema_id}@v{self.schema_version}"

    @property
    def title(self) -> str:
        return f"llmtrace {self.name} | {self.version_id}"


def parse_title(title: str) -> tuple[str, str, int] | None:
    """(queue, schema id, version) of a project title this package gave, else None."""
    match = _TITLE.match(title or "")
    if match is None:
        return None
    return match["queue"], match["schema"], int(match["version"])


def _from_row(row: dict[str, Any]) -> Queue:
    return Queue(row["queue"], int(row["project_id"]), row["schema_id"],
                 int(row["schema_version"]), row.get("kind") or "review")


def known(store: Store, name: str) -> Queue | None:
    """The queue as the store records it (no Label Studio call)."""
    row = store.queue(name)
    return _from_row(row) if row is not None else None


def required(store: Store, name: str) -> Queue:
    """:func:`known`, or a ConfigError saying how to get the queue into the store."""
    queue = known(store, name)
    if queue is None:
        raise ConfigError(f"queue {name!r} is not known: it is not in the store; import "
                          "traces into it or run `ls-llmtrace sync` for it first")
    return queue


def record(store: Store, queue: Queue) -> None:
    """Record the queue's project and current version."""
    store.set_queue(queue.name, queue.project_id, queue.schema_id, queue.schema_version,
                    queue.kind, queue.title)


def _kind(project: dict[str, Any]) -> str:
    description = project.get("description") or ""
    if description.startswith(PAIRWISE_PREFIX):
        return "pairwise"
    return "adjudication" if description.startswith(ADJUDICATION_PREFIX) else "review"


def from_label_studio(projects: list[dict[str, Any]]) -> dict[str, Queue]:
    """Queue -> its newest project among Label Studio projects titled by this package."""
    best: dict[str, Queue] = {}
    for project in projects:
        parsed = parse_title(project.get("title") or "")
        if parsed is None:
            continue
        name, schema_id, version = parsed
        queue = Queue(name, int(project["id"]), schema_id, version, _kind(project))
        current = best.get(name)
        if current is None or (version, queue.project_id) > (current.schema_version,
                                                             current.project_id):
            best[name] = queue
    return best


def resolve(client: LabelStudioClient, store: Store, name: str,
            schema_id: str | None = None) -> Queue | None:
    """The queue's project and current version: from the store, else from Label Studio
    project titles (then recorded). ``schema_id`` narrows the Label Studio lookup to
    projects of that schema."""
    queue = known(store, name)
    if queue is not None:
        return queue
    projects = [p for p in client.project_summaries(title=f"llmtrace {name} | ")
                if (parsed := parse_title(p.get("title") or "")) is not None
                and parsed[0] == name and (schema_id is None or parsed[1] == schema_id)]
    queue = from_label_studio(projects).get(name)
    if queue is not None:
        record(store, queue)
    return queue


def check_version(queue: Queue, schema: AnnotationSchema) -> None:
    """Refuse (one line) a schema version other than the queue's current one."""
    if schema.id == queue.schema_id and schema.version == queue.schema_version:
        return
    if schema.id != queue.schema_id:
        raise ConfigError(
            f"queue {queue.name!r} is at {queue.version_id} (project {queue.project_id}), "
            f"not schema {schema.id}: ask for another queue, e.g. "
            f"--queue {queue.name}-{schema.id}")
    if schema.version < queue.schema_version:
        raise ConfigError(
            f"queue {queue.name!r} is at {queue.version_id} (project {queue.project_id}); "
            f"{schema.version_id} is older: drop --schema to use {queue.version_id}, or ask "
            f"for another queue, e.g. --queue {queue.name}-v{schema.version}")
    raise ConfigError(
        f"queue {queue.name!r} is at {queue.version_id} (project {queue.project_id}): move it "
        f"to {schema.version_id} first with `ls-llmtrace schema push <file> --queue "
        f"{queue.name}`")


def schema_of(queue: Queue, schema_dir: Path | None = None) -> AnnotationSchema:
    """The schema file of the queue's current version, from the schema directory."""
    directory = schema_dir or settings.schema_dir()
    found = find_schema_version(directory, queue.schema_id, queue.schema_version)
    if found is None:
        raise ConfigError(f"queue {queue.name!r} (project {queue.project_id}) is at "
                          f"{queue.version_id} but {directory} has no schema file of it: "
                          "keep every version in the schema directory or set "
                          "LS_LLMTRACE_SCHEMA_DIR")
    return found


def default_schema(store: Store | None = None,
                   schema_dir: Path | None = None) -> AnnotationSchema:
    """The schema a new queue starts at when none is given: the default schema file
    (``LS_LLMTRACE_SCHEMA``), moved up to the newest version other queues of that schema
    are at when its file is in the schema directory (after ``schema push`` of v2 to one
    queue, a queue created later by ``route`` starts at v2, not v1). An explicitly set
    ``LS_LLMTRACE_SCHEMA`` is taken as it is."""
    schema = load_schema(settings.default_schema_path())
    if store is None or settings.schema_path_is_explicit():
        return schema
    newest = max((int(q["schema_version"]) for q in store.queues()
                  if q["schema_id"] == schema.id), default=schema.version)
    if newest <= schema.version:
        return schema
    directory = schema_dir or settings.schema_dir()
    found = find_schema_version(directory, schema.id, newest)
    return found or schema


def queue_schema(client: LabelStudioClient, store: Store, name: str,
                 explicit: AnnotationSchema | None = None, schema_dir: Path | None = None,
                 ) -> tuple[Queue | None, AnnotationSchema]:
    """The queue (None if new) and the schema a command works on: the queue's current
    version by default, an explicit one only if it is that version."""
    queue = resolve(client, store, name, explicit.id if explicit else None)
    if queue is None:
        return None, explicit or default_schema(store, schema_dir)
    if explicit is not None:
        check_version(queue, explicit)
        return queue, explicit
    return queue, schema_of(queue, schema_dir)


def create_project(client: LabelStudioClient, store: Store, name: str,
                   schema: AnnotationSchema, pairwise_config: str | None = None,
                   compare: str | None = None, adjudication_of: str | None = None,
                   looked_up: bool = False) -> Queue:
    """Create (or take over, by title) the project of a new queue and record it.
    ``adjudication_of``: the review queue whose disagreements this queue settles;
    ``looked_up``: the caller just found no project of the queue (:func:`resolve`), so
    it is created without asking for its title again."""
    title = project_title(schema, name)
    lookup = not looked_up
    if adjudication_of is not None:
        project_id, _ = client.push_config(
            title, build_label_config(schema),
            description=f"{ADJUDICATION_PREFIX} '{name}': disagreements of queue "
            f"'{adjudication_of}', for the schema owner {schema.owner}, schema "
            f"{schema.version_id}", instructions=build_instructions(schema), lookup=lookup)
        kind = "adjudication"
    elif pairwise_config is not None:
        project_id, _ = client.push_config(
            title, pairwise_config,
            description=f"{PAIRWISE_PREFIX} '{name}', schema {schema.version_id}, "
            f"comparing {compare}", lookup=lookup)
        kind = "pairwise"
    else:
        project_id, _ = client.push_schema(schema, name, lookup=lookup)
        kind = "review"
    queue = Queue(name, project_id, schema.id, schema.version, kind)
    record(store, queue)
    return queue


# The Data Manager tab of a review queue: the columns reviewers filter by. The judge's
# verdict is in its prediction's results, its confidence the prediction's score (Label
# Studio's own columns: nothing is written per task at prediction time).
REVIEW_VIEW = "llmtrace review"
REVIEW_COLUMNS = (
    "tasks:id", *(f"tasks:data.{key}" for key in (
        "trace_id", "model", "model_version", "product_area", "user_segment", "latency_ms",
        "thumbs", "queue_reasons", "llmtrace_cluster")),
    "tasks:predictions_results", "tasks:predictions_score", "tasks:predictions_model_versions",
    "tasks:total_annotations", "tasks:annotators", "tasks:completed_at")


def ensure_review_view(client: LabelStudioClient, project_id: int) -> str:
    """The review queue's Data Manager tab (:data:`REVIEW_COLUMNS`), made idempotently."""
    return client.ensure_view(project_id, REVIEW_VIEW, REVIEW_COLUMNS)


def listing(client: LabelStudioClient | None, store: Store) -> list[dict[str, Any]]:
    """Every queue the store or Label Studio knows, with its version and counts (task and
    annotation counts from Label Studio's cheap project listing; None when unreachable)."""
    queues = {q["queue"]: _from_row(q) for q in store.queues()}
    summaries: dict[int, dict[str, Any]] = {}
    reachable = client is not None
    if client is not None:
        try:
            everything = client.project_summaries(title="llmtrace ")
            for name, queue in from_label_studio(everything).items():
                queues.setdefault(name, queue)
            summaries = {int(p["id"]): p for p in everything}
        except LabelStudioError:
            reachable = False
    claims = store.queue_counts()
    rows = []
    for name, queue in sorted(queues.items()):
        summary = summaries.get(queue.project_id, {})
        items, with_task = claims.get(name, (0, 0))
        rows.append({
            "queue": name, "project_id": queue.project_id, "schema": queue.version_id,
            "schema_id": queue.schema_id, "schema_version": queue.schema_version,
            "kind": queue.kind, "title": queue.title,
            "tasks": int(summary.get("task_number") or 0) if reachable else None,
            "annotations": int(summary.get("total_annotations_number") or 0)
            if reachable else None,
            "items": items, "items_with_task": with_task,
        })
    return rows
