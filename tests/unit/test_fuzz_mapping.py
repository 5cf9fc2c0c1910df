"""Property tests of the annotation mapper: whatever a Label Studio client puts in the
fields it controls (the result list, lead time, flags, task data), mapping one annotation
never raises, and every record it gives can be stored and read back.

A crash here was a sync poison pill: the page's transaction rolled back, the cursor never
moved, and every later sync of the project failed on the same annotation.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ls_llmtrace.models import AnnotationRecord, NotStorable, storable_body
from ls_llmtrace.records.mapping import map_annotation, map_pairwise_annotation
from ls_llmtrace.schema.model import load_schema

from .paths import LABEL_CONFIGS

SCHEMAS = [load_schema(LABEL_CONFIGS / "default.v1.yaml"),
           load_schema(LABEL_CONFIGS / "default.v2.yaml")]
# per property; `make stress` runs these files again with FUZZ_EXAMPLES (test_fuzz_stress.py)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

NAMES = ["verdict", "categories", "score", "explanation", "corrected_output",
         "answer_spans", "message_spans", "preference", "other"]
TYPES = ["choices", "rating", "number", "textarea", "labels", "paragraphlabels",
         "pairwise", "hypertext", "taxonomy"]
VALUE_KEYS = ["choices", "rating", "number", "text", "start", "end", "startOffset",
              "endOffset", "labels", "paragraphlabels", "selected"]

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
           | st.sampled_from(["pass", "fail", "hallucination", "wrong_fact", "3", "-1", "left",
                              "2025-06-01T10:00:00Z", "0001-01-01T00:00:00+05:00", "\ud800"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=12)


def deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": value}
    return value


values = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(VALUE_KEYS), json_values, max_size=6),
    st.builds(deep, st.integers(100, 400)),
)
# (control, type, value keys) as Label Studio's UI sends them, to fill with anything
SHAPES = [("verdict", "choices", ["choices"]), ("categories", "choices", ["choices"]),
          ("score", "number", ["number"]), ("score", "rating", ["rating"]),
          ("explanation", "textarea", ["text"]), ("corrected_output", "textarea", ["text"]),
          ("answer_spans", "labels", ["start", "end", "text", "labels"]),
          ("message_spans", "paragraphlabels", ["start", "end", "startOffset", "endOffset",
                                                "text", "paragraphlabels"]),
          ("preference", "pairwise", ["selected"])]
GOOD = {"choices": ["fail"], "number": 0.5, "rating": 3, "text": ["why"], "start": 1,
        "end": 4, "startOffset": 0, "endOffset": 3, "labels": ["wrong_fact"],
        "paragraphlabels": ["wrong_fact"], "selected": "left"}


@st.composite
def shaped_entries(draw: st.DrawFn) -> dict[str, Any]:
    """An entry of a known control with the right keys, some of them holding anything."""
    name, kind, keys = draw(st.sampled_from(SHAPES))
    value = {k: draw(json_values) if draw(st.booleans()) else GOOD[k] for k in keys}
    entry: dict[str, Any] = {"from_name": name, "to_name": "answer", "type": kind,
                             "value": value}
    if draw(st.booleans()):
        entry["id"] = draw(json_values)
    return entry


entries = st.one_of(
    shaped_entries(), shaped_entries(),
    json_values,
    st.fixed_dictionaries(
        {"from_name": st.sampled_from(NAMES) | json_values,
         "type": st.sampled_from(TYPES) | json_values,
         "value": values},
        optional={"id": json_values, "to_name": json_values, "origin": json_values}),
)
annotations = st.fixed_dictionaries(
    {"id": st.integers(1, 10**9),
     "result": st.lists(entries, max_size=6) | json_values},
    optional={"lead_time": json_values, "was_cancelled": json_values,
              "ground_truth": json_values, "completed_by": json_values,
              "created_at": st.sampled_from(["2025-06-01T10:00:00Z", None]),
              "updated_at": st.sampled_from(["2025-06-02T10:00:00+02:00", None])})
tasks = st.fixed_dictionaries(
    {"id": st.integers(1, 10**9),
     "data": st.fixed_dictionaries(
         {"trace_id": st.sampled_from(["trace-a"]) | json_values,
          "left_trace_id": st.just("trace-a") | json_values,
          "right_trace_id": st.just("trace-b") | json_values},
         optional={"redactions": json_values | st.fixed_dictionaries(
                       {"answer": json_values, "message:0": json_values}),
                   "answer": json_values, "pair_id": json_values, "left_label": json_values})},
    optional={"meta": json_values | st.fixed_dictionaries({"pair_sides": json_values | (
        st.fixed_dictionaries({"left": json_values, "right": json_values}))})})


def _check(mapped: Any) -> None:
    for record in mapped.records:
        try:
            body = storable_body(record)
        except NotStorable as exc:  # the sync keeps such a record aside with this reason
            assert str(exc)
            continue
        assert AnnotationRecord.model_validate_json(body) == record
    for reject in mapped.rejects:
        assert isinstance(reject.reason, str) and reject.reason


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=tasks, annotation=annotations, which=st.sampled_from(SCHEMAS))
def test_map_annotation_never_raises(task: dict[str, Any], annotation: dict[str, Any],
                                     which: Any) -> None:
    _check(map_annotation(task, annotation, which, 7, {3: "rev@example.com"}))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=tasks, annotation=annotations)
def test_map_pairwise_annotation_never_raises(task: dict[str, Any],
                                              annotation: dict[str, Any]) -> None:
    _check(map_pairwise_annotation(task, annotation, SCHEMAS[0], 7, None))
