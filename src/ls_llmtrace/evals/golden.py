"""Golden sets: the deciding reviewer records of a queue, as versioned regression cases.

:func:`build_golden` turns a queue's reviewer records into :class:`GoldenCase` s under the
queue's current schema version:

- **Deciding record** per trace, among its live reviewer records (cancelled and deleted
  ones never decide, nor one without a verdict): a ground-truth record first, then the
  schema owner's adjudication (a record whose author is the schema's ``owner``), then the
  latest review (``updated_at``, else ``created_at``); ties within a rank go to the latest.
- **Older schema versions** are mapped through the migration files beside the schema
  files (``<schema dir>/migrations/<id>.v<n>-to-v<n+1>.yaml``, one per step); a record
  with a step missing, or whose values a migration sends to the review queue, is left out
  and counted (``left_out``).
- **Failures** are traces whose deciding verdict is failing; ``require_corrected`` leaves
  out those without a corrected output (counted).
- **Controls** are passing traces: ``control_share x failures`` of them (rounded half
  up). A passing trace has no failure category, so stratifying by category means drawing
  the controls from where each category's failures occur: every (product area, model
  version) cell gets the sum of its categories' shares of the failures, i.e. its share of
  the failures (largest-remainder quotas), filled from the passing traces of that cell,
  any shortfall from the other passing traces. Within a cell the order is a seeded hash of
  the trace id (``sha256(seed:trace_id)``): a re-run picks the same controls and a new
  passing trace does not reshuffle the others.
- **Near-duplicate inputs** are collapsed (:mod:`ls_llmtrace.evals.dedupe`): among the
  failures, ground truth, then adjudicated, then corrected ones are kept first; a passing
  trace repeating a kept failure or another passing trace is dropped before the controls
  are drawn.

The set id is the schema version plus a hash of the cases (never the build time):
the same records give the same id. :func:`write_golden` writes the folder (cases.jsonl,
manifest.json, Parquet, promptfoo, OpenAI Evals). ``golden export`` (v0: the failures in
the judge's few-shot shape) is :func:`export_golden`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.evals import dedupe
from ls_llmtrace.evals.cases import (
    CASES_FILE,
    MANIFEST_FILE,
    CaseInput,
    DecidedBy,
    GoldenCase,
    GoldenManifest,
    SpanLabel,
    content_sha256,
    set_id,
    write_cases,
)
from ls_llmtrace.judging.judges.fewshot import golden_cases, is_adjudication
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.schema.migration import Evidence, Migration, load_migration, move_values
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import RecordFilter, Store

_EPOCH = datetime.min.replace(tzinfo=UTC)
DEDUPE_THRESHOLD = dedupe.THRESHOLD

# left-out reasons (manifest counts["left_out"]); records or traces, as the name says
NO_MIGRATION = "records_of_older_version_without_migration"
NEWER_VERSION = "records_of_newer_version"
MIGRATION_REVIEW = "records_the_migration_sends_to_review"
TRACE_MISSING = "traces_not_in_store"
NOT_CORRECTED = "failures_without_corrected_output"
DUP_FAILURE = "near_duplicate_failures"
DUP_PASSING = "near_duplicate_passing_traces"


@dataclass
class BuildOptions:
    control_share: float = 0.25
    require_corrected: bool = False
    seed: int = 0
    dedupe: bool = True
    dedupe_threshold: float = DEDUPE_THRESHOLD


@dataclass
class BuildFilters:
    """Which records count (times compare the record's ``created_at``)."""

    since: datetime | None = None
    until: datetime | None = None
    model_version: str | None = None
    product_area: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in asdict(self).items() if v is not None}


@dataclass
class GoldenSet:
    cases: list[GoldenCase]
    manifest: GoldenManifest

    @property
    def set_id(self) -> str:
        return self.manifest.set_id


@dataclass
class _Decided:
    record: AnnotationRecord
    spans: list[AnnotationRecord]
    decided_by: DecidedBy


@dataclass
class _Migrations:
    """The chain of migration files of one schema, read once."""

    directory: Path | None
    schema_id: str
    found: dict[int, Migration | None] = field(default_factory=dict)

    def step(self, from_version: int) -> Migration | None:
        if from_version not in self.found:
            path = (self.directory / "migrations" /
                    f"{self.schema_id}.v{from_version}-to-v{from_version + 1}.yaml"
                    if self.directory is not None else None)
            self.found[from_version] = (load_migration(path)
                                        if path is not None and path.is_file() else None)
        return self.found[from_version]


def _when(record: AnnotationRecord) -> datetime:
    return record.updated_at or record.created_at or _EPOCH


def _annotation_key(record: AnnotationRecord) -> str:
    """The trace-scope record key a span record belongs to (``ls:<p>:<a>:<result>``)."""
    return record.record_key.rsplit(":", 1)[0] if record.scope.kind != "trace" \
        else record.record_key


def _migrate(record: AnnotationRecord, spans: list[AnnotationRecord], target: int,
             chain: _Migrations) -> tuple[AnnotationRecord, list[AnnotationRecord]] | str:
    """The record and its spans under version ``target``, or the reason it is left out."""
    if record.schema_version > target:
        return NEWER_VERSION
    version = record.schema_version
    while version < target:
        migration = chain.step(version)
        if migration is None:
            return NO_MIGRATION
        evidence = Evidence(record.explanation or "", record.score)
        update: dict[str, Any] = {"schema_version": version + 1}
        if record.label is not None:
            moved = move_values(migration, "verdict", [record.label], evidence)
            if moved.reviews or len(moved.values) != 1:
                return MIGRATION_REVIEW
            update["label"] = moved.values[0]
        if record.labels:
            moved = move_values(migration, "categories", record.labels, evidence)
            if moved.reviews:
                return MIGRATION_REVIEW
            update["labels"] = moved.values
        for kind in migration.dropped_fields:
            if kind in ("score", "explanation", "corrected_output"):
                update[kind] = None
        new_spans = []
        for span in spans if "spans" not in migration.dropped_fields else []:
            moved = move_values(migration, "spans", span.labels, evidence, span.scope.text)
            if moved.reviews:
                return MIGRATION_REVIEW
            if moved.values:
                new_spans.append(span.model_copy(update={"labels": moved.values,
                                                         "schema_version": version + 1}))
        record, spans = record.model_copy(update=update), new_spans
        version += 1
    return record, spans


def decide(records: list[AnnotationRecord], schema: AnnotationSchema,
           schema_dir: Path | None = None, left_out: Counter[str] | None = None,
           ) -> dict[str, _Decided]:
    """trace id -> its deciding record (and the span records of the same annotation),
    migrated to ``schema``'s version; what cannot be migrated is counted in ``left_out``."""
    left_out = left_out if left_out is not None else Counter()
    chain = _Migrations(schema_dir, schema.id)
    spans: dict[str, list[AnnotationRecord]] = {}
    for record in records:
        if record.scope.kind == "text_range" and not record.deleted:
            spans.setdefault(_annotation_key(record), []).append(record)
    best: dict[str, tuple[tuple[bool, bool, datetime, str], _Decided]] = {}
    for record in records:
        if (record.scope.kind != "trace" or record.was_cancelled or record.deleted
                or record.label is None or record.schema_id != schema.id):
            continue
        own = sorted(spans.get(record.record_key, []), key=lambda r: r.record_key)
        migrated = _migrate(record, own, schema.version, chain)
        if isinstance(migrated, str):
            left_out[migrated] += 1
            continue
        record, own = migrated
        adjudication = is_adjudication(record, schema.owner)
        rank = (record.ground_truth, adjudication, _when(record), record.record_key)
        decided_by: DecidedBy = ("ground_truth" if record.ground_truth else
                                 "adjudication" if adjudication else "latest_review")
        current = best.get(record.trace_id)
        if current is None or rank > current[0]:
            best[record.trace_id] = (rank, _Decided(record, own, decided_by))
    return {trace_id: decided for trace_id, (_, decided) in best.items()}


def _rubric(schema: AnnotationSchema, names: list[str]) -> dict[str, str]:
    return {n: schema.rubric[n].definition for n in dict.fromkeys(names) if n in schema.rubric}


def _case(trace: Trace, decided: _Decided, schema: AnnotationSchema) -> GoldenCase:
    record = decided.record
    failing = schema.is_failing(record.label)
    spans = [SpanLabel(labels=list(s.labels), text=s.scope.text or "",
                       target=s.scope.target or "answer", message_index=s.scope.message_index,
                       start=s.scope.start, end=s.scope.end) for s in decided.spans]
    categories = list(record.labels) if failing else []
    span_names = [label for s in spans for label in s.labels]
    meta = trace.metadata
    return GoldenCase(
        case_id=trace.trace_id, trace_id=trace.trace_id,
        kind="failure" if failing else "control",
        input=CaseInput(system_prompt=trace.system_prompt, messages=trace.messages,
                        documents=trace.documents, tool_calls=trace.tool_calls()),
        output=trace.output, corrected_output=record.corrected_output,
        reference=record.corrected_output if failing else (record.corrected_output
                                                           or trace.output),
        verdict=record.label or "", categories=categories, spans=spans, score=record.score,
        explanation=record.explanation,
        rubric=_rubric(schema, [record.label or "", *categories, *span_names]),
        model=meta.model, model_version=meta.model_version, prompt_name=meta.prompt_name,
        prompt_version=meta.prompt_version, product_area=meta.product_area,
        user_segment=meta.user_segment, reviewer=record.author, decided_by=decided.decided_by,
        record_keys=[record.record_key, *(s.record_key for s in decided.spans)],
    )


def input_text(case: GoldenCase) -> str:
    """What near-duplicates are measured on: the system prompt and the messages."""
    parts = [case.input.system_prompt, *(m.content for m in case.input.messages)]
    return "\n".join(p for p in parts if p)


def _order(seed: int, trace_id: str) -> str:
    return hashlib.sha256(f"{seed}:{trace_id}".encode()).hexdigest()


def _cell(case: GoldenCase) -> tuple[str, str]:
    return (case.product_area or "", case.model_version or "")


def pick_controls(failures: list[GoldenCase], passing: list[GoldenCase], count: int,
                  seed: int) -> list[GoldenCase]:
    """``count`` controls, stratified by the failures' (product area, model version)
    cells (largest-remainder quotas), each cell in seeded-hash order, the shortfall of
    a cell filled from every other passing trace in the same order."""
    count = min(count, len(passing))
    if count <= 0:
        return []
    ordered = sorted(passing, key=lambda c: _order(seed, c.trace_id))
    cells = Counter(_cell(f) for f in failures)
    total = sum(cells.values())
    quotas: dict[tuple[str, str], int] = {}
    if total:
        exact = {cell: count * n / total for cell, n in cells.items()}
        quotas = {cell: int(v) for cell, v in exact.items()}
        rest = count - sum(quotas.values())
        for cell in sorted(exact, key=lambda c: (-(exact[c] - quotas[c]), c))[:rest]:
            quotas[cell] += 1
    chosen: list[GoldenCase] = []
    taken: set[str] = set()
    for cell, quota in sorted(quotas.items()):
        for case in (c for c in ordered if _cell(c) == cell):
            if quota <= 0:
                break
            chosen.append(case)
            taken.add(case.trace_id)
            quota -= 1
    for case in ordered:
        if len(chosen) >= count:
            break
        if case.trace_id not in taken:
            chosen.append(case)
            taken.add(case.trace_id)
    return chosen


def _prefer(case: GoldenCase) -> tuple[int, int, int, str]:
    rank = {"ground_truth": 0, "adjudication": 1, "latest_review": 2}[case.decided_by]
    return (rank, case.corrected_output is None, -len(case.spans), case.case_id)


def _collapse(cases: list[GoldenCase], threshold: float,
              kept_before: Sequence[GoldenCase] = ()) -> tuple[list[GoldenCase], int]:
    ordered = sorted(cases, key=_prefer)
    mask = dedupe.keep_mask([input_text(c) for c in ordered], threshold,
                            [input_text(c) for c in kept_before])
    kept = [c for c, keep in zip(ordered, mask, strict=True) if keep]
    return kept, len(ordered) - len(kept)


def build_golden(store: Store, schema: AnnotationSchema, *, queue: str | None = None,
                 project_id: int | None = None, filters: BuildFilters | None = None,
                 options: BuildOptions | None = None, schema_dir: Path | None = None,
                 now: datetime | None = None) -> GoldenSet:
    """The golden set of ``schema``'s reviewer records (of ``project_id`` when given:
    records without a project, e.g. from the Feedback API, count too, and so do those of
    the ``queue``'s adjudication queues, where the owner settles disagreements)."""
    filters = filters or BuildFilters()
    options = options or BuildOptions()
    if options.control_share < 0:
        raise ConfigError(f"the control share must be 0 or more, not {options.control_share}")
    where = RecordFilter(source="reviewer", schema_id=schema.id, since=filters.since,
                         until=filters.until, model_version=filters.model_version,
                         product_area=filters.product_area)
    projects: set[int | None] = {None, project_id}
    if queue is not None:
        projects |= {a["project_id"] for a in store.adjudication_queues(queue)}
    records = [r for r in store.records(where=where)
               if project_id is None or r.ls_project_id in projects]
    left_out: Counter[str] = Counter()
    decided = decide(records, schema, schema_dir, left_out)
    failures: list[GoldenCase] = []
    passing: list[GoldenCase] = []
    for trace_id in sorted(decided):
        trace = store.trace(trace_id)
        if trace is None:
            left_out[TRACE_MISSING] += 1
            continue
        case = _case(trace, decided[trace_id], schema)
        if case.kind == "failure" and options.require_corrected and not case.corrected_output:
            left_out[NOT_CORRECTED] += 1
            continue
        (failures if case.kind == "failure" else passing).append(case)
    if options.dedupe:
        failures, dropped = _collapse(failures, options.dedupe_threshold)
        left_out[DUP_FAILURE] += dropped
    if options.dedupe:
        # passing traces that repeat a kept failure or another passing trace never serve
        passing, dropped = _collapse(passing, options.dedupe_threshold, failures)
        left_out[DUP_PASSING] += dropped
    wanted = math.floor(options.control_share * len(failures) + 0.5)  # half up
    controls = pick_controls(failures, passing, wanted, options.seed)
    cases = sorted(failures + controls, key=lambda c: c.case_id)
    categories = Counter(cat for c in failures for cat in c.categories)
    counts: dict[str, Any] = {
        "cases": len(cases), "failures": len(failures), "controls": len(controls),
        "controls_wanted": wanted, "passing_available": len(passing),
        "per_category": dict(sorted(categories.items())),
        "per_verdict": dict(sorted(Counter(c.verdict for c in cases).items())),
        "decided_by": dict(sorted(Counter(c.decided_by for c in cases).items())),
        "with_spans": sum(1 for c in cases if c.spans),
        "spans": sum(len(c.spans) for c in cases),
        "with_corrected_output": sum(1 for c in failures if c.corrected_output),
        "left_out": {k: v for k, v in sorted(left_out.items()) if v},
    }
    manifest = GoldenManifest(
        set_id=set_id(schema.id, schema.version, cases), schema_id=schema.id,
        schema_version=schema.version, content_sha256=content_sha256(cases), queue=queue,
        project_id=project_id, built_at=now or datetime.now(UTC), filters=filters.as_dict(),
        options={"control_share": options.control_share,
                 "controls": "control_share x failures (half up), stratified by the failures' "
                             "(product_area, model_version)",
                 "require_corrected": options.require_corrected, "seed": options.seed,
                 "dedupe": options.dedupe, "dedupe_threshold": options.dedupe_threshold,
                 "dedupe_measure": "Jaccard of word 5-shingles of system prompt + messages"},
        counts=counts)
    return GoldenSet(cases, manifest)


def write_golden(golden: GoldenSet, out_dir: Path, promptfoo_provider: str | None = None,
                 promptfoo_base_url: str | None = None,
                 promptfoo_grader: str | None = None) -> Path:
    """Write the set to ``out_dir/<set id>/``: cases.jsonl, manifest.json and the exports;
    returns the folder."""
    from ls_llmtrace.evals import exporters

    folder = out_dir / golden.set_id.replace("@", "_")
    folder.mkdir(parents=True, exist_ok=True)
    write_cases(golden.cases, folder / CASES_FILE)
    files = {"cases": CASES_FILE}
    files.update(exporters.write_exports(golden.cases, folder, golden.set_id,
                                         promptfoo_provider, promptfoo_base_url,
                                         promptfoo_grader))
    golden.manifest.files = {**files, "manifest": MANIFEST_FILE}
    tmp = folder / (MANIFEST_FILE + ".tmp")
    tmp.write_text(golden.manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST_FILE)
    return folder


# v0: `golden export` ------------------------------------------------------------------


def write_jsonl(cases: list[dict[str, Any]], out: TextIO) -> None:
    for case in cases:
        out.write(json.dumps(case, ensure_ascii=False, sort_keys=True) + "\n")


def export_golden(store: Store, schema: AnnotationSchema, path: Path) -> int:
    """The failures in the judge's few-shot shape (``LS_LLMTRACE_JUDGE_GOLDEN`` reads it)."""
    cases = golden_cases(store, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        write_jsonl(cases, out)
    tmp.replace(path)
    return len(cases)


__all__ = ["BuildFilters", "BuildOptions", "GoldenSet", "build_golden", "decide",
           "export_golden", "golden_cases", "pick_controls", "write_golden", "write_jsonl"]
