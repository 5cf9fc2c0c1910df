"""schema.py: the checked-in schema loads; every broken schema fails with a clear SchemaError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ls_llmtrace.errors import ConfigError, SchemaError
from ls_llmtrace.schema.model import (
    MAX_FIELDS,
    CorrectedOutputField,
    ExplanationField,
    LabelField,
    ScoreField,
    load_schema,
    load_schema_dir,
    parse_schema,
)

from .paths import DEFAULT_YAML, LABEL_CONFIGS

BASE: dict[str, Any] = {
    "id": "review",
    "version": 3,
    "title": "Review",
    "owner": "lead@example.com",
    "fields": [
        {"type": "label", "values": ["pass", "fail"], "failing": ["fail"]},
        {"type": "score"},
        {"type": "explanation"},
    ],
    "rubric": {"pass": {"definition": "Good."}, "fail": {"definition": "Bad."}},
}


def _write(tmp_path: Path, raw: Any, name: str = "broken.v3.yaml") -> Path:
    path = tmp_path / name
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _schema_error(tmp_path: Path, raw: Any) -> tuple[str, Path]:
    path = _write(tmp_path, raw)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    return str(info.value), path


def _variant(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


# --- the checked-in schema ---------------------------------------------------------------


def test_default_schema_loads(default_schema):
    assert default_schema.id == "default"
    assert default_schema.version == 1
    assert default_schema.version_id == "default@v1"
    assert default_schema.owner == "quality-lead@example.com"
    assert [type(f) for f in default_schema.fields] == [
        LabelField, ScoreField, ExplanationField, CorrectedOutputField]
    label = default_schema.label_field
    assert label is not None
    assert label.values == ["pass", "fail"]
    assert label.failing == ["fail"]
    assert set(default_schema.rubric) == {"pass", "fail"}
    assert all(e.definition.strip() for e in default_schema.rubric.values())


def test_default_schema_helpers(default_schema):
    assert default_schema.is_failing("fail") is True
    assert default_schema.is_failing("pass") is False
    assert default_schema.is_failing(None) is False
    assert default_schema.has("score") and default_schema.has("corrected_output")
    assert not default_schema.has("bogus")


def test_load_schema_dir_finds_default():
    schemas = load_schema_dir(LABEL_CONFIGS)
    assert ("default", 1) in schemas
    assert schemas[("default", 1)].version_id == "default@v1"


def test_base_variant_is_valid(tmp_path):
    """The base used by the negative tests below is itself valid (so they test one thing)."""
    schema = load_schema(_write(tmp_path, BASE))
    assert schema.version_id == "review@v3"


def test_schema_error_is_a_config_error():
    assert issubclass(SchemaError, ConfigError)
    assert SchemaError.exit_code == 2


# --- broken schemas ----------------------------------------------------------------------


def test_six_fields_rejected(tmp_path):
    fields = [{"type": "label"}, {"type": "score"}, {"type": "explanation"},
              {"type": "corrected_output"}, {"type": "score"}, {"type": "explanation"}]
    assert len(fields) == MAX_FIELDS + 1
    message, path = _schema_error(tmp_path, _variant(fields=fields))
    assert str(path) in message
    assert "fields" in message
    assert f"at most {MAX_FIELDS}" in message


def test_five_fields_is_the_limit_not_an_error(tmp_path):
    """Five fields are allowed by count; the four types repeat, so that error shows instead."""
    fields = [{"type": "label"}, {"type": "score"}, {"type": "explanation"},
              {"type": "corrected_output"}, {"type": "score"}]
    message, _ = _schema_error(tmp_path, _variant(fields=fields))
    assert "at most" not in message
    assert "repeated" in message


def test_repeated_field_type_rejected(tmp_path):
    fields = [{"type": "label"}, {"type": "score"}, {"type": "score", "step": 0.1}]
    message, path = _schema_error(tmp_path, _variant(fields=fields))
    assert str(path) in message
    assert "repeated" in message
    assert "score" in message


def test_duplicate_label_values_case_insensitive(tmp_path):
    fields = [{"type": "label", "values": ["pass", "fail", "Pass"], "failing": ["fail"]}]
    message, path = _schema_error(tmp_path, _variant(fields=fields))
    assert str(path) in message
    assert "fields.0.label.values" in message
    assert "duplicate label 'Pass'" in message


@pytest.mark.parametrize("bad", ['<b>fail</b>', 'say "no"', "a&b", "x>y", ""])
def test_label_value_that_would_break_xml_rejected(tmp_path, bad):
    fields = [{"type": "label", "values": ["pass", bad], "failing": ["pass"]}]
    message, path = _schema_error(tmp_path, _variant(fields=fields, rubric={}))
    assert str(path) in message
    assert "fields.0.label.values" in message
    assert repr(bad) in message


@pytest.mark.parametrize("definition", ["", "   \n  "])
def test_blank_rubric_definition_rejected(tmp_path, definition):
    rubric = {"pass": {"definition": "Good."}, "fail": {"definition": definition}}
    message, path = _schema_error(tmp_path, _variant(rubric=rubric))
    assert str(path) in message
    assert "rubric.fail.definition" in message


def test_rubric_entry_for_unknown_label_rejected(tmp_path):
    rubric = {"pass": {"definition": "Good."}, "maybe": {"definition": "Unsure."}}
    message, path = _schema_error(tmp_path, _variant(rubric=rubric))
    assert str(path) in message
    assert "rubric" in message
    assert "'maybe'" in message


def test_failing_unknown_value_rejected(tmp_path):
    fields = [{"type": "label", "values": ["pass", "fail"], "failing": ["broken"]}]
    message, path = _schema_error(tmp_path, _variant(fields=fields))
    assert str(path) in message
    assert "fields.0.label" in message
    assert "failing" in message
    assert "'broken'" in message


def test_not_yaml_rejected(tmp_path):
    message, path = _schema_error(tmp_path, "id: [unclosed\nversion: 1\n")
    assert str(path) in message
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["- id: default\n- version: 1\n", "", "just a string\n"])
def test_yaml_that_is_not_a_mapping_rejected(tmp_path, text):
    message, path = _schema_error(tmp_path, text)
    assert str(path) in message
    assert "must be a YAML mapping" in message


def test_unknown_top_level_key_rejected(tmp_path):
    message, path = _schema_error(tmp_path, _variant(colour="blue"))
    assert str(path) in message
    assert "colour" in message


def test_unknown_field_type_rejected(tmp_path):
    message, path = _schema_error(tmp_path, _variant(fields=[{"type": "stars"}]))
    assert str(path) in message
    assert "fields.0" in message


def test_missing_file_is_a_schema_error(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SchemaError, match="cannot read schema file") as info:
        load_schema(path)
    assert str(path) in str(info.value)


def test_parse_schema_uses_origin_in_message():
    with pytest.raises(SchemaError, match=r"^inline\.yaml: "):
        parse_schema("[1, 2]", "inline.yaml")


def test_settings_find_the_checked_in_schema(monkeypatch):
    from ls_llmtrace import settings

    monkeypatch.delenv("LS_LLMTRACE_SCHEMA", raising=False)
    monkeypatch.chdir(LABEL_CONFIGS)  # searched from the current directory upwards
    assert settings.default_schema_path().resolve() == DEFAULT_YAML.resolve()
