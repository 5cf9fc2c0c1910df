"""schema.py, v2 features: categories, rating scores, span labels and their rule errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from ls_llmtrace.errors import SchemaError
from ls_llmtrace.schema.model import ScoreField, SpanField, load_schema, parse_schema

from .paths import LABEL_CONFIGS

BASE: dict[str, Any] = {
    "id": "rich", "version": 1, "owner": "lead@example.com",
    "fields": [
        {"type": "label", "values": ["pass", "fail"], "failing": ["fail"],
         "categories": ["hallucination", "incomplete"]},
        {"type": "score", "scale": "rating", "max_rating": 5},
        {"type": "explanation"},
        {"type": "corrected_output"},
        {"type": "spans", "labels": ["wrong_fact"], "targets": ["answer"]},
    ],
    "rubric": {"hallucination": {"definition": "Made up."},
               "wrong_fact": {"definition": "Contradicts a tool."}},
}


def _parse(**changes: Any):  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return parse_schema(yaml.safe_dump(raw), "rich.yaml")


def _error(**changes: Any) -> str:
    with pytest.raises(SchemaError) as info:
        _parse(**changes)
    message = str(info.value)
    assert message.startswith("rich.yaml: ")
    return message


def test_five_fields_of_five_types_load():
    schema = _parse()
    assert [f.type for f in schema.fields] == ["label", "score", "explanation",
                                               "corrected_output", "spans"]
    assert schema.categories == ["hallucination", "incomplete"]
    assert isinstance(schema.score_field, ScoreField) and schema.score_field.is_rating
    assert isinstance(schema.span_field, SpanField) and schema.span_field.targets == ["answer"]
    assert schema.names() == {"pass", "fail", "hallucination", "incomplete", "wrong_fact"}


def test_sixth_field_rejected():
    fields = [*BASE["fields"], {"type": "explanation"}]
    assert "at most 5" in _error(fields=fields)


def test_checked_in_v2_loads():
    schema = load_schema(LABEL_CONFIGS / "default.v2.yaml")
    assert schema.version_id == "default@v2"
    assert len(schema.fields) == 5
    assert set(schema.rubric) == schema.names()  # every label has a rubric entry


def test_scale_ids():
    field = ScoreField(type="score", scale="rating", max_rating=10)
    assert field.scale_id() == "rating 1-10"
    assert ScoreField(type="score").scale_id() == "number 0.0-1.0"


def test_duplicate_category_rejected():
    fields = copy.deepcopy(BASE["fields"])
    fields[0]["categories"] = ["hallucination", "Hallucination"]
    message = _error(fields=fields)
    assert "fields.0.label.categories" in message
    assert "duplicate category 'Hallucination'" in message


def test_duplicate_span_label_rejected():
    fields = copy.deepcopy(BASE["fields"])
    fields[4]["labels"] = ["wrong_fact", "wrong_fact"]
    assert "duplicate span label 'wrong_fact'" in _error(fields=fields)


@pytest.mark.parametrize("bad", ["a,b", "<x>", 'q"uote', "x&y", "-dash"])
def test_category_and_span_names_that_break_xml_rejected(bad):
    fields = copy.deepcopy(BASE["fields"])
    fields[0]["categories"] = [bad]
    assert repr(bad) in _error(fields=fields, rubric={})
    fields = copy.deepcopy(BASE["fields"])
    fields[4]["labels"] = [bad]
    assert repr(bad) in _error(fields=fields, rubric={})


@pytest.mark.parametrize("entry", [None, {}, ""])
def test_empty_rubric_entry_rejected(entry):
    message = _error(rubric={"hallucination": entry})
    assert "rubric entry 'hallucination' is empty" in message


def test_rubric_for_unknown_name_rejected():
    message = _error(rubric={"nonsense": {"definition": "?"}})
    assert "'nonsense'" in message and "category or span label" in message


def test_categories_need_a_failing_value():
    fields = copy.deepcopy(BASE["fields"])
    fields[0]["failing"] = []
    assert "categories are shown on a failing verdict" in _error(fields=fields)


def test_span_targets_checked():
    fields = copy.deepcopy(BASE["fields"])
    fields[4]["targets"] = ["answer", "answer"]
    assert "duplicate target" in _error(fields=fields)
    fields[4]["targets"] = ["documents"]
    assert "fields.4.spans.targets" in _error(fields=fields)
    fields[4]["targets"] = []
    assert "fields.4.spans.targets" in _error(fields=fields)


def test_rating_scale_bounds():
    fields = copy.deepcopy(BASE["fields"])
    fields[1]["max_rating"] = 1
    assert "max_rating" in _error(fields=fields)
    fields[1] = {"type": "score", "scale": "stars"}
    assert "fields.1.score.scale" in _error(fields=fields)


def test_rubric_for_judge_is_plain_text():
    text = load_schema(LABEL_CONFIGS / "default.v2.yaml").rubric_for_judge()
    assert text.startswith("Schema default@v2")
    assert "- hallucination: The answer states something" in text
    assert "    e.g.: Weather tool says rain; the answer says sunny." in text
    assert "    not: The tool failed and the answer says so." in text
