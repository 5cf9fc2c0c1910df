"""Golden set v0: failed traces with their corrected outputs, as JSONL regression cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

_EPOCH = datetime.min.replace(tzinfo=UTC)


def _when(record: AnnotationRecord) -> datetime:
    return record.updated_at or record.created_at or _EPOCH


def _latest_per_trace(records: list[AnnotationRecord]) -> dict[str, AnnotationRecord]:
    latest: dict[str, AnnotationRecord] = {}
    for record in records:
        if record.was_cancelled or record.deleted or record.label is None:
            continue
        best = latest.get(record.trace_id)
        # Ground truth wins; otherwise the most recently updated review.
        if best is None or (record.ground_truth, _when(record)) > (best.ground_truth, _when(best)):
            latest[record.trace_id] = record
    return latest


def golden_cases(store: Store, schema: AnnotationSchema) -> list[dict[str, Any]]:
    """One case per trace whose deciding reviewer record is a failing label."""
    records = [r for r in store.records(source="reviewer")
               if r.schema_id == schema.id and r.scope.kind == "trace"]
    cases = []
    for trace_id, record in sorted(_latest_per_trace(records).items()):
        if not schema.is_failing(record.label):
            continue
        trace = store.trace(trace_id)
        rubric = schema.rubric.get(record.label or "")
        cases.append({
            "case_id": f"{schema.id}:{trace_id}",
            "trace_id": trace_id,
            "schema_version": schema.version_id,
            "input": {
                "system_prompt": trace.system_prompt if trace else None,
                "messages": [m.model_dump(exclude_defaults=True) for m in trace.messages]
                if trace else None,
                "documents": [d.model_dump(exclude_defaults=True) for d in trace.documents]
                if trace else None,
            },
            "bad_output": trace.output if trace else None,
            "corrected_output": record.corrected_output,
            "label": record.label,
            "score": record.score,
            "explanation": record.explanation,
            "rubric": rubric.definition if rubric else None,
            "model_version": trace.metadata.model_version if trace else None,
            "prompt_version": trace.metadata.prompt_version if trace else None,
            "reviewer": record.author,
            "annotation": record.record_key,
        })
    return cases


def write_jsonl(cases: list[dict[str, Any]], out: TextIO) -> None:
    for case in cases:
        out.write(json.dumps(case, ensure_ascii=False, sort_keys=True) + "\n")


def export_golden(store: Store, schema: AnnotationSchema, path: Path) -> int:
    cases = golden_cases(store, schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        write_jsonl(cases, out)
    tmp.replace(path)
    return len(cases)
