"""One bad annotation never blocks a sync: it is kept aside (project, task, annotation id,
reason), the rest of its page is written and the cursor moves on. Runs on both engines.

Before, each of these annotations made the page's transaction roll back: the cursor never
moved and every later sync of the project failed on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ls_llmtrace.records.sync import SyncSummary, _write_page
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

PROJECT = 7


def _verdict(value: str) -> dict[str, Any]:
    return {"from_name": "verdict", "to_name": "answer", "type": "choices",
            "value": {"choices": [value]}}


def _task(task_id: int, trace_id: str, *annotations: dict[str, Any],
          **data: Any) -> dict[str, Any]:
    return {"id": task_id, "data": {"trace_id": trace_id, **data},
            "updated_at": f"2025-06-01T10:00:{task_id:02d}Z", "annotations": list(annotations)}


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": value}
    return value


POISON = {
    # an annotation whose lead time is not a number (a client sets it)
    "lead_time list": (_task(2, "t-2", {"id": 20, "lead_time": [], "result": [
        _verdict("fail")]}), "lead_time"),
    # an explanation with a lone surrogate: the record cannot be written as UTF-8
    "lone surrogate": (_task(3, "t-3", {"id": 30, "result": [
        _verdict("fail"), {"from_name": "explanation", "to_name": "answer", "type": "textarea",
                           "value": {"text": ["bad \ud800 text"]}}]}), "(record ls:7:30)"),
    # a result value that is a list or a string where a mapping is expected
    "value list": (_task(4, "t-4", {"id": 40, "result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": ["fail"]}]}), "verdict"),
    "value string": (_task(5, "t-5", {"id": 50, "result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": "fail"}]}), "verdict"),
    # redactions recorded in the task data as something else than ranges
    "redactions bool": (_task(6, "t-6", {"id": 60, "result": [
        {"from_name": "answer_spans", "to_name": "answer", "type": "labels", "id": "r1",
         "value": {"start": 0, "end": 3, "labels": ["wrong_fact"]}}]},
        redactions={"answer": True}), None),
    # task meta that is not a mapping and no trace id in the data
    "meta list": ({"id": 8, "data": {}, "meta": ["x"], "updated_at": "2025-06-01T10:00:08Z",
                   "annotations": [{"id": 80, "result": [_verdict("pass")]}]},
                  "data.trace_id"),
    # a pairwise task whose compared value nests 300 deep: metadata that could never be
    # read back
    "deep pair": ({"id": 9, "data": {"pair_id": "p"},
                   "meta": {"pair_sides": {
                       "left": {"trace_id": "l", "compare": "x", "value": _deep(300)},
                       "right": {"trace_id": "r", "compare": "x", "value": "v"}}},
                   "updated_at": "2025-06-01T10:00:09Z",
                   "annotations": [{"id": 90, "result": [
                       {"from_name": "preference", "to_name": "preference",
                        "type": "pairwise", "value": {"selected": "left"}}]}]},
                  "(record ls:7:90)"),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_annotation_is_kept_aside_and_the_cursor_moves(
        name: str, store: Store, schema_v2: AnnotationSchema) -> None:
    poison, field = POISON[name]
    good = _task(1, "t-1", {"id": 10, "result": [_verdict("pass")]})
    later = _task(11, "t-11", {"id": 110, "result": [_verdict("fail")]})
    newest = datetime(2025, 6, 1, 10, 0, 10, tzinfo=UTC)
    summary = SyncSummary(PROJECT)
    _write_page(store, PROJECT, schema_v2, [good, poison], {}, newest, summary)
    assert store.cursor(PROJECT) == newest  # the page was committed
    labels = {r.trace_id: r.label for r in store.records()}
    assert labels["t-1"] == "pass"
    kept = store.rejected_results()
    if field is not None:
        mine = [k for k in kept if k["field"] == field]
        assert mine, kept
        assert mine[0]["ls_project_id"] == PROJECT
        assert mine[0]["ls_task_id"] == poison["id"]
        assert mine[0]["ls_annotation_id"] == poison["annotations"][0]["id"]
        assert mine[0]["reason"]
        assert summary.rejected >= 1
    # whatever was written reads back (``ls-llmtrace records`` keeps working)
    assert all(r.record_key for r in store.records(include_deleted=True))
    # and the next page goes through
    _write_page(store, PROJECT, schema_v2, [later], {}, newest.replace(second=11),
                SyncSummary(PROJECT))
    assert store.cursor(PROJECT) == newest.replace(second=11)
    assert {r.trace_id: r.label for r in store.records()}["t-11"] == "fail"


@pytest.fixture(scope="module")
def schema_v2() -> AnnotationSchema:
    from ls_llmtrace.schema.model import load_schema

    from .paths import LABEL_CONFIGS

    return load_schema(LABEL_CONFIGS / "default.v2.yaml")
