"""Golden set v0: failed traces with their corrected outputs, as JSONL regression cases.

The cases are the ones the LLM judge learns from (:mod:`ls_llmtrace.judging.judges.fewshot`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from ls_llmtrace.judging.judges.fewshot import golden_cases
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store


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
