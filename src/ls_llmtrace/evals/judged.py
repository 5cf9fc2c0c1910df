"""What the judge and the reviewers said about each trace of a queue (reads the store).

The human side of a trace is its *deciding* reviewer record, by the golden set's rule
(:func:`ls_llmtrace.evals.golden.decide`: ground truth, then the schema owner's
adjudication, then the latest review; older schema versions migrated). The judge side is
the latest prediction of the chosen judge version (records with ``source = judge``,
read from Label Studio by ``ls-llmtrace agreement --fetch``, see
``records/verdicts.py``), taken through the same rule and migration.

The judge version defaults to the one with the most traces in the queue. A trace's time
(for ``--since``/``--until`` and the report's periods) is its own start time when the
trace has one, else when it was judged, else when it was reviewed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.evals.golden import decide
from ls_llmtrace.ingest.queues import required, schema_of
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

DIMENSIONS = ("model_version", "product_area", "user_segment")
UNKNOWN = "(unknown)"
JUDGE_VERSION = "judge_version"  # the metadata key records/verdicts.py writes


@dataclass
class Judged:
    """One trace: its deciding reviewer record and the judge's verdict (either may be
    missing), with their span records."""

    trace_id: str
    trace: Trace | None
    human: AnnotationRecord | None = None
    human_spans: list[AnnotationRecord] = field(default_factory=list)
    decided_by: str | None = None
    judge: AnnotationRecord | None = None
    judge_spans: list[AnnotationRecord] = field(default_factory=list)

    def dimension(self, name: str) -> str:
        value = getattr(self.trace.metadata, name, None) if self.trace else None
        for record in (self.human, self.judge):
            if value is None and record is not None:
                value = record.metadata.get(name)
        return str(value) if value else UNKNOWN

    @property
    def at(self) -> datetime | None:
        when = self.trace.metadata.start_time if self.trace else None
        for record in (self.judge, self.human):
            if when is None and record is not None:
                when = record.created_at or record.updated_at
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when


@dataclass
class QueueVerdicts:
    queue: str
    schema: AnnotationSchema
    judge_version: str | None
    judge_versions: dict[str, int]  # judge version -> traces it judged in the queue
    items: list[Judged]
    # every live trace-level reviewer record of the current schema version (reliability)
    reviewer_records: list[AnnotationRecord]

    def failing(self, record: AnnotationRecord | None) -> bool | None:
        if record is None or record.label is None:
            return None
        return self.schema.is_failing(record.label)

    def both(self) -> list[Judged]:
        """The traces both the judge and a reviewer labelled."""
        return [i for i in self.items if i.human is not None and i.judge is not None]


def judge_version_of(record: AnnotationRecord) -> str | None:
    value = record.metadata.get(JUDGE_VERSION) or record.author
    return str(value) if value else None


def queue_verdicts(store: Store, queue_name: str, *, judge_version: str | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   schema_dir: Path | None = None) -> QueueVerdicts:
    """Every trace of a queue (every project it has had) the judge or a reviewer
    labelled, within ``[since, until)`` when given."""
    queue = required(store, queue_name)
    schema_dir = schema_dir or settings.schema_dir()
    schema = schema_of(queue, schema_dir)
    projects = {int(p["project_id"]) for p in store.projects() if p["queue"] == queue_name}
    projects.add(queue.project_id)
    records = [r for r in store.records() if r.ls_project_id in projects]
    reviewer = [r for r in records if r.source == Source.reviewer]
    judge = [r for r in records if r.source == Source.judge]
    versions = Counter(v for v in (judge_version_of(r) for r in judge
                                   if r.scope.kind == "trace" and r.label is not None) if v)
    by_traces = Counter({v: len({r.trace_id for r in judge if judge_version_of(r) == v
                                 and r.scope.kind == "trace"}) for v in versions})
    if judge_version is None and by_traces:
        judge_version = max(by_traces, key=lambda v: (by_traces[v], v))
    elif judge_version is not None and judge_version not in by_traces:
        known_versions = ", ".join(sorted(by_traces)) or "none"
        raise ConfigError(f"judge version {judge_version!r} has no verdicts in queue "
                          f"{queue_name!r} (stored: {known_versions}); `ls-llmtrace "
                          "agreement --fetch` reads them from Label Studio")
    humans = decide(reviewer, schema, schema_dir)
    judged = decide([r for r in judge if judge_version_of(r) == judge_version], schema,
                    schema_dir) if judge_version else {}
    items = []
    for trace_id in sorted(set(humans) | set(judged)):
        item = Judged(trace_id, store.trace(trace_id))
        if trace_id in humans:
            d = humans[trace_id]
            item.human, item.human_spans, item.decided_by = d.record, d.spans, d.decided_by
        if trace_id in judged:
            item.judge, item.judge_spans = judged[trace_id].record, judged[trace_id].spans
        when = item.at
        if (since is not None and (when is None or when < since)) or (
                until is not None and (when is None or when >= until)):
            continue
        items.append(item)
    live = [r for r in reviewer if r.scope.kind == "trace" and not r.deleted
            and not r.was_cancelled and r.label is not None and r.schema_id == schema.id
            and r.schema_version == schema.version]
    kept = {i.trace_id for i in items}
    return QueueVerdicts(queue_name, schema, judge_version, dict(by_traces), items,
                         [r for r in live if r.trace_id in kept])
