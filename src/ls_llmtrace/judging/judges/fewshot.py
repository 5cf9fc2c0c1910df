"""The LLM judge's few-shot examples: the reviewers' failures as golden cases.

Read from the golden JSONL at ``LS_LLMTRACE_JUDGE_GOLDEN`` when it is set, otherwise
(with few-shot on) built from the reviewers' failure records in the store; the golden set
export writes the same cases.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

log = logging.getLogger("ls_llmtrace.judge.fewshot")
_EPOCH = datetime.min.replace(tzinfo=UTC)


def _when(record: AnnotationRecord) -> datetime:
    return record.updated_at or record.created_at or _EPOCH


def deciding_records(records: list[AnnotationRecord],
                     owner: str | None = None) -> dict[str, AnnotationRecord]:
    """trace id -> the trace-level record that decides its label: ground truth first, then
    the schema owner's adjudication (a record marked ``adjudication``, or one whose author
    is ``owner``), then the most recently updated review (the record key breaks exact
    ties). Cancelled, deleted and unlabelled records never decide."""
    best: dict[str, AnnotationRecord] = {}
    for record in records:
        if (record.was_cancelled or record.deleted or record.label is None
                or record.scope.kind != "trace"):
            continue
        current = best.get(record.trace_id)
        if current is None or _rank(record, owner) > _rank(current, owner):
            best[record.trace_id] = record
    return best


def trace_case(trace_id: str, trace: Trace | None, record: AnnotationRecord,
               schema: AnnotationSchema) -> dict[str, Any]:
    """One labelled trace in the golden-case shape the LLM judge learns from."""
    rubric = schema.rubric.get(record.label or "")
    return {
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
    }


def is_adjudication(record: AnnotationRecord, owner: str | None) -> bool:
    """Whether the record is the schema owner's decision."""
    return record.adjudication or (owner is not None and record.author == owner)


def _rank(record: AnnotationRecord, owner: str | None) -> tuple[bool, bool, datetime, str]:
    return (record.ground_truth, is_adjudication(record, owner), _when(record),
            record.record_key)


def golden_cases(store: Store, schema: AnnotationSchema) -> list[dict[str, Any]]:
    """One case per trace whose deciding reviewer record is a failing label."""
    records = [r for r in store.records(source="reviewer")
               if r.schema_id == schema.id and r.scope.kind == "trace"]
    cases = []
    for trace_id, record in sorted(deciding_records(records, schema.owner).items()):
        if not schema.is_failing(record.label):
            continue
        cases.append(trace_case(trace_id, store.trace(trace_id), record, schema))
    return cases


def read_golden_file(path: Path) -> list[dict[str, Any]]:
    """Cases from a golden JSONL file (bad lines are skipped with a warning)."""
    cases = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                log.warning("golden file %s line %d skipped: %s", path, number, exc.msg)
                continue
            if isinstance(case, dict):
                cases.append(case)
    return cases


def few_shot_cases(schema: AnnotationSchema | None) -> list[dict[str, Any]]:
    """The cases the LLM judge learns from: the golden file when one is set, else (with
    few-shot on and a known schema) the store's failures; unreadable sources give none."""
    golden_path = settings.judge_golden_path()
    if golden_path is not None:
        try:
            return read_golden_file(golden_path)
        except OSError as exc:
            log.warning("golden file %s not readable: %s", golden_path, exc.strerror)
            return []
    if schema is None or not settings.judge_few_shot():
        return []
    try:
        with Store() as store:
            return golden_cases(store, schema)
    except LLMTraceError as exc:
        log.warning("no golden cases from the store: %s", exc)
        return []
