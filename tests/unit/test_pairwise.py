"""Pairwise queue pieces (pure): input hash, the config, the task, the preference mapping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ls_llmtrace.ingest.pairwise import (
    build_pairwise_config,
    input_hash,
    is_pairwise_task,
    pair_task,
)
from ls_llmtrace.models import Trace
from ls_llmtrace.records.mapping import map_pairwise_annotation
from ls_llmtrace.schema.labelconfig import parse_controls


def _t(trace_id: str, answer: str, version: str, question: str = "Capital of Peru?") -> Trace:
    return Trace.model_validate({"trace_id": trace_id, "system_prompt": "Be brief.",
                                 "messages": [{"role": "user", "content": question}],
                                 "output": answer, "metadata": {"model_version": version}})


def test_input_hash_ignores_the_answer_and_the_model() -> None:
    assert input_hash(_t("a", "Lima", "m1")) == input_hash(_t("b", "Cusco", "m2"))
    assert input_hash(_t("a", "Lima", "m1")) != input_hash(_t("c", "Lima", "m1", "Capital?"))


def test_config_has_the_fixed_pairwise_control(default_schema) -> None:
    config = build_pairwise_config(default_schema)
    ET.fromstring(config)
    controls = parse_controls(config)
    assert controls["preference"].tag == "Pairwise"
    assert controls["preference"].to_name == "left,right"


def test_task_and_mapping(default_schema) -> None:
    task = pair_task(_t("a", "Lima", "m1"), _t("b", "Cusco", "m2"), default_schema,
                     "model_version")
    data = task["data"]
    assert (data["left"], data["right"]) == ("Lima", "Cusco")
    assert data["trace_id"] == "pair:a|b" and data["messages"][0]["content"] == "Capital of Peru?"
    assert (data["left_label"], data["right_label"]) == ("model_version m1", "model_version m2")
    full = {**task, "id": 7}
    assert is_pairwise_task(full)
    annotation = {"id": 3, "completed_by": 1, "created_at": "2025-01-01T00:00:00Z", "result": [
        {"from_name": "preference", "to_name": "preference", "type": "pairwise",
         "value": {"selected": "left"}}]}
    mapped = map_pairwise_annotation(full, annotation, default_schema, 9, {1: "r@x"})
    [record] = mapped.records
    assert mapped.rejects == []
    assert (record.record_key, record.trace_id, record.label, record.author) == \
        ("ls:9:3", "a", "left", "r@x")
    assert record.metadata["preferred_trace_id"] == "a"
    bad = {**annotation, "result": [{"from_name": "verdict", "type": "choices",
                                     "value": {"choices": ["fail"]}}]}
    mapped = map_pairwise_annotation(full, bad, default_schema, 9)
    assert mapped.records == []
    assert [r.field for r in mapped.rejects] == ["verdict", "preference"]


def test_malformed_pairwise_results_are_kept_aside_not_raised(default_schema) -> None:
    """A result that is not a JSON object (an API client's) used to raise AttributeError."""
    task = {**pair_task(_t("a", "Lima", "m1"), _t("b", "Cusco", "m2"), default_schema,
                        "model_version"), "id": 7}
    annotation = {"id": 3, "result": ["oops", {"from_name": "preference", "type": "pairwise",
                                               "value": "left"},
                                      {"from_name": "preference", "to_name": "preference",
                                       "type": "pairwise", "value": {"selected": "right"}}]}
    mapped = map_pairwise_annotation(task, annotation, default_schema, 9)
    assert [r.label for r in mapped.records] == ["right"]
    assert [r.raw for r in mapped.rejects] == annotation["result"][:2]
