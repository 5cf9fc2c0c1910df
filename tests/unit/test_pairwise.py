"""Pairwise queue pieces (pure): input hash, the blind config, the randomized task, the
preference mapping that undoes the sides."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ls_llmtrace.ingest.pairwise import (
    build_pairwise_config,
    input_hash,
    is_pairwise_task,
    order_pair,
    pair_key,
    pair_task,
    swapped,
)
from ls_llmtrace.models import Trace
from ls_llmtrace.records.mapping import map_pairwise_annotation
from ls_llmtrace.schema.labelconfig import parse_controls


def _t(trace_id: str, answer: str, version: str, question: str = "Capital of Peru?") -> Trace:
    return Trace.model_validate({"trace_id": trace_id, "system_prompt": "Be brief.",
                                 "messages": [{"role": "user", "content": question}],
                                 "output": answer, "metadata": {"model_version": version,
                                                                "prompt_name": "geo-prompt"}})


def _choice(value: str, reason: str | None = None) -> list[dict[str, Any]]:
    result = [{"from_name": "preference", "to_name": "left", "type": "choices",
               "value": {"choices": [value]}}]
    if reason is not None:
        result.append({"from_name": "preference_reason", "to_name": "left",
                       "type": "textarea", "value": {"text": [reason]}})
    return result


def _pair(i: int) -> tuple[Trace, Trace]:
    return order_pair(_t(f"a{i}", f"Lima {i}", "m-old"), _t(f"b{i}", f"Cusco {i}", "m-new"))


def test_input_hash_ignores_the_answer_and_the_model() -> None:
    assert input_hash(_t("a", "Lima", "m1")) == input_hash(_t("b", "Cusco", "m2"))
    assert input_hash(_t("a", "Lima", "m1")) != input_hash(_t("c", "Lima", "m1", "Capital?"))


def test_config_offers_left_right_tie_both_bad_and_a_reason(default_schema) -> None:
    config = build_pairwise_config(default_schema)
    root = ET.fromstring(config)
    controls = parse_controls(config)
    assert controls["preference"].tag == "Choices"
    aliases = [c.get("alias") for c in root.iter("Choice")]
    assert aliases == ["left", "right", "tie", "both_bad"]
    assert controls["preference_reason"].tag == "TextArea"
    # nothing on screen can name a model or prompt: no task variable but the texts
    variables = {v for el in root.iter() for v in el.attrib.values() if v.startswith("$")}
    assert variables == {"$system_prompt", "$messages", "$left", "$right"}


def test_sides_are_randomized_deterministically_and_kept_in_meta(default_schema) -> None:
    tasks = [pair_task(*_pair(i), default_schema, "model_version") for i in range(40)]
    flips = [t["meta"]["pair_sides"]["swapped"] for t in tasks]
    assert 10 <= sum(flips) <= 30  # both orders occur
    for i, task in enumerate(tasks):
        first, second = _pair(i)
        assert task == pair_task(first, second, default_schema, "model_version")  # stable
        sides = task["meta"]["pair_sides"]
        shown_left = second if sides["swapped"] else first
        assert sides["swapped"] == swapped(pair_key(first.trace_id, second.trace_id))
        assert task["data"]["left"] == shown_left.output
        assert sides["left"]["trace_id"] == shown_left.trace_id
        assert sides["left"]["model_version"] == shown_left.metadata.model_version
        # blind: no model, prompt or side trace id in what the task shows
        shown = repr(task["data"])
        assert "m-old" not in shown and "m-new" not in shown and "geo-prompt" not in shown
        assert "left_trace_id" not in task["data"]
        assert is_pairwise_task({**task, "id": 1})


def test_mapping_undoes_the_swap(default_schema) -> None:
    index = next(i for i in range(40) if swapped(pair_key(f"a{i}", f"b{i}")))
    task = {**pair_task(*_pair(index), default_schema, "model_version"), "id": 7}
    assert task["data"]["left"] == f"Cusco {index}"  # b is on the left
    annotation = {"id": 3, "completed_by": 1, "created_at": "2025-01-01T00:00:00Z",
                  "result": _choice("left", "names the capital")}
    mapped = map_pairwise_annotation(task, annotation, default_schema, 9, {1: "r@x"})
    assert mapped.rejects == []
    [record] = mapped.records
    assert (record.record_key, record.trace_id, record.label, record.author) == \
        ("ls:9:3", f"b{index}", "preferred", "r@x")
    assert record.explanation == "names the capital"
    assert record.metadata["preferred_trace_id"] == f"b{index}"
    assert record.metadata["preferred_model_version"] == "m-new"
    assert record.metadata["other_trace_id"] == f"a{index}"
    assert record.metadata["selected"] == "left"
    for value, label in (("tie", "tie"), ("both_bad", "both_bad")):
        [record] = map_pairwise_annotation(task, {**annotation, "result": _choice(value)},
                                           default_schema, 9).records
        assert (record.trace_id, record.label) == (f"a{index}", label)
        assert record.metadata["preferred_trace_id"] is None


def test_unknown_results_are_rejected_and_older_pairs_still_map(default_schema) -> None:
    task = {**pair_task(*_pair(0), default_schema, "model_version"), "id": 7}
    bad = {"id": 3, "result": [{"from_name": "verdict", "type": "choices",
                                "value": {"choices": ["fail"]}}, *_choice("better")]}
    mapped = map_pairwise_annotation(task, bad, default_schema, 9)
    assert mapped.records == []
    assert [r.field for r in mapped.rejects] == ["verdict", "preference", "preference"]
    # a pair imported before the sides were randomized: trace ids in data, <Pairwise>
    old = {"id": 8, "data": {"trace_id": "pair:a|b", "pair_id": "pair:a|b",
                             "left_trace_id": "a", "right_trace_id": "b"}}
    assert is_pairwise_task(old)
    annotation = {"id": 4, "result": [{"from_name": "preference", "to_name": "preference",
                                       "type": "pairwise", "value": {"selected": "right"}}]}
    [record] = map_pairwise_annotation(old, annotation, default_schema, 9).records
    assert (record.trace_id, record.label) == ("b", "preferred")


def test_malformed_pairwise_results_are_kept_aside_not_raised(default_schema) -> None:
    """A result that is not a JSON object (an API client's) used to raise AttributeError."""
    task = {**pair_task(*_pair(0), default_schema, "model_version"), "id": 7}
    annotation = {"id": 3, "result": ["oops", {"from_name": "preference", "type": "choices",
                                               "value": "left"}, *_choice("right")]}
    mapped = map_pairwise_annotation(task, annotation, default_schema, 9)
    assert [r.label for r in mapped.records] == ["preferred"]
    assert [r.raw for r in mapped.rejects] == annotation["result"][:2]
