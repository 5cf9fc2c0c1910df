"""Adjudication: the traces whose reviewers disagree go to the schema owner to decide.

:func:`disagreements` (pure) reads a queue's reviewer records: a trace disagrees when
its reviewers (each one's latest trace-level verdict) gave different verdicts, or, with
``with_judge``, when a reviewer changed the verdict the judge proposed (the record's
``origins``). :func:`route_disagreements` puts those traces into the queue's adjudication
queue, a Label Studio project of the same schema version (``<queue>-adjudication`` by
default), each task showing every reviewer's verdict and explanation in its metadata
table. The tasks are claimed like any import, so re-running adds only new disagreements.

Label Studio Community cannot assign a task to one user: the adjudication project is
for the owner by convention (its description names them). What makes a decision count
is its author: the sync marks an annotation in an adjudication queue whose author is the
schema's ``owner`` as ``adjudication``, and the deciding rule ranks it above the
reviewers' records (ground truth still first); the reviewers' records are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest import queues
from ls_llmtrace.ingest.routing import Router
from ls_llmtrace.ingest.rules import single_queue
from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.store import Store

_EPOCH = datetime.min.replace(tzinfo=UTC)
TITLE_LIMIT = 50  # Label Studio 1.23.2 refuses longer project titles (HTTP 400)


@dataclass(frozen=True)
class Disagreement:
    """One trace to adjudicate: why, and each reviewer's latest verdict record."""

    trace_id: str
    reason: str
    reviews: tuple[AnnotationRecord, ...]


@dataclass
class AdjudicationSummary:
    queue: str
    adjudication_queue: str
    project_id: int
    disagreements: int = 0
    routed: int = 0  # new tasks in the adjudication queue
    already: int = 0  # routed by an earlier run
    missing_traces: list[str] = field(default_factory=list)

    def line(self) -> str:
        missing = (f"; {len(self.missing_traces)} traces not in the store"
                   if self.missing_traces else "")
        return (f"queue {self.queue}: {self.disagreements} disagreements, {self.routed} new "
                f"in {self.adjudication_queue} (project {self.project_id}), {self.already} "
                f"routed before{missing}")


def _when(record: AnnotationRecord) -> datetime:
    return record.updated_at or record.created_at or _EPOCH


def latest_by_author(records: Iterable[AnnotationRecord]) -> dict[str, dict[str,
                                                                      AnnotationRecord]]:
    """trace id -> author -> that author's latest live, labelled trace-level record."""
    out: dict[str, dict[str, AnnotationRecord]] = {}
    for record in records:
        if (record.scope.kind != "trace" or record.deleted or record.was_cancelled
                or record.label is None or record.adjudication):
            continue
        author = record.author or f"annotation:{record.ls_annotation_id}"
        mine = out.setdefault(record.trace_id, {})
        current = mine.get(author)
        if current is None or (_when(record), record.record_key) > (_when(current),
                                                                    current.record_key):
            mine[author] = record
    return out


def disagreements(records: Iterable[AnnotationRecord],
                  with_judge: bool = False) -> list[Disagreement]:
    """The traces to adjudicate, by trace id (see the module docstring)."""
    out = []
    for trace_id, by_author in sorted(latest_by_author(records).items()):
        reviews = tuple(by_author[a] for a in sorted(by_author))
        labels = {r.label for r in reviews}
        if len(reviews) > 1 and len(labels) > 1:
            said = ", ".join(f"{r.author} {r.label}" for r in reviews)
            out.append(Disagreement(trace_id, f"reviewers disagree: {said}", reviews))
        elif with_judge:
            changed = [r for r in reviews if r.origins.get("label") == "prediction-changed"]
            if changed:
                judge = changed[0].prediction.model_version if changed[0].prediction else None
                out.append(Disagreement(
                    trace_id, f"{', '.join(str(r.author) for r in changed)} changed the "
                    f"verdict of judge {judge or '(unknown)'}", reviews))
    return out


def default_name(queue: str) -> str:
    return f"{queue}-adjudication"


def _notes(found: dict[str, Disagreement]) -> Callable[[Trace], dict[str, str]]:
    def notes(trace: Trace) -> dict[str, str]:
        item = found.get(trace.trace_id)
        if item is None:
            return {}
        rows = {"adjudication": item.reason}
        for review in item.reviews:
            text = str(review.label)
            if review.explanation:
                text += f": {review.explanation}"
            rows[f"reviewer {review.author}"] = text
        return rows
    return notes


def route_disagreements(client: LabelStudioClient, store: Store, queue: str,
                        to: str | None = None, with_judge: bool = False,
                        ) -> AdjudicationSummary:
    """Put the queue's disagreements into its adjudication queue (created on first use
    with the queue's current schema version); idempotent."""
    source = queues.resolve(client, store, queue)
    if source is None:
        raise ConfigError(f"queue {queue!r} is not known to the store or Label Studio: "
                          "import traces into it and sync first")
    if source.kind != "review":
        raise ConfigError(f"queue {queue!r} is a {source.kind} queue: adjudicate the review "
                          "queue whose reviewers disagree")
    schema = queues.schema_of(source)
    name = to or default_name(queue)
    records = [r for r in store.records(source="reviewer")
               if r.ls_project_id == source.project_id and r.schema_id == schema.id]
    found = {d.trace_id: d for d in disagreements(records, with_judge)}
    target = queues.resolve(client, store, name, schema.id)
    if target is None and len(project_title(schema, name)) > TITLE_LIMIT:
        raise ConfigError(f"the adjudication queue's project title "
                          f"{project_title(schema, name)!r} is longer than Label Studio's "
                          f"{TITLE_LIMIT} characters: name a shorter queue with --to")
    if target is None:
        target = queues.create_project(client, store, name, schema, adjudication_of=queue)
    elif target.kind != "adjudication":
        raise ConfigError(f"queue {name!r} exists and is a {target.kind} queue: choose "
                          "another adjudication queue with --to")
    store.set_adjudication_queue(name, queue)
    summary = AdjudicationSummary(queue, name, target.project_id, len(found))
    traces = []
    for trace_id in sorted(found):
        trace = store.trace(trace_id)
        if trace is None:
            summary.missing_traces.append(trace_id)
        else:
            traces.append(trace)
    if traces:
        router = Router(client, store, single_queue(name), schema, notes=_notes(found))
        routed = router.route(traces)
        summary.routed, summary.already = routed.imported, routed.duplicates
    return summary
