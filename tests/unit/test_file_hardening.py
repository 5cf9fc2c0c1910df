"""The files users write, case by case: what the fuzzing found, each as its own test.

Control characters and lone surrogates never reach the generated XML; labels are compared
after trimming; a title cannot spoof the schema version a config announces; a migration
regex cannot hang the run; numeric scales must be finite; and every problem is one line
naming the file and the field, exit 2 from the CLI.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.errors import ConfigError, MigrationError, SchemaError
from ls_llmtrace.ingest.rules import parse_rules
from ls_llmtrace.records.feedback import parse_mapping
from ls_llmtrace.schema.labelconfig import build_label_config, schema_version_of
from ls_llmtrace.schema.migration import Evidence, move_values, parse_migration
from ls_llmtrace.schema.model import parse_schema

from .conftest import MINIMAL_SCHEMA_YAML


def _schema(**changes: object) -> str:
    doc = yaml.safe_load(MINIMAL_SCHEMA_YAML)
    doc.update(changes)
    return yaml.safe_dump(doc, allow_unicode=False)


@pytest.mark.parametrize("title", ["bad\x01title", "bell\x07", "nul\x00", "\ufffe", "\ud800"])
def test_control_characters_and_surrogates_are_rejected_by_field(title: str) -> None:
    with pytest.raises(SchemaError) as err:
        parse_schema(_schema(title=title), "s.yaml")
    message = str(err.value)
    assert message.startswith("s.yaml: ") and "title" in message and "\n" not in message


def test_control_characters_in_the_rubric_name_the_entry() -> None:
    text = _schema(rubric={"fail": {"definition": "wrong\x0b answer"}})
    with pytest.raises(SchemaError, match=r"rubric\.fail\.definition"):
        parse_schema(text, "s.yaml")


def test_tabs_and_newlines_stay_allowed_and_the_xml_is_valid() -> None:
    schema = parse_schema(_schema(title="Review\tone", description="two\nlines"), "s.yaml")
    ET.fromstring(build_label_config(schema))


def test_a_title_cannot_spoof_the_schema_version() -> None:
    with pytest.raises(SchemaError, match="title"):
        parse_schema(_schema(title="Mine (schema evil@v9)"), "s.yaml")
    # and a config whose header was edited by hand still announces only the last version
    config = ('<View><Header value="x (schema evil@v9) (schema mini@v2)" size="4"/>'
              '<Text name="answer" value="$answer"/></View>')
    assert schema_version_of(config) == "mini@v2"
    forged = ('<View><Header value="mine" size="4"/><Text name="answer" value="$answer"/>'
              '<Header value="(schema evil@v9)"/></View>')
    assert schema_version_of(forged) is None


@pytest.mark.parametrize("values", [["fail", "fail\n"], ["pass", " pass "], ["a", "A "]])
def test_labels_are_trimmed_and_compared_after_trimming(values: list[str]) -> None:
    with pytest.raises(SchemaError, match="duplicate"):
        parse_schema(_schema(fields=[{"type": "label", "values": values}]), "s.yaml")


def test_trimmed_labels_are_used_everywhere() -> None:
    schema = parse_schema(_schema(fields=[{"type": "label", "values": [" pass", "fail "],
                                           "failing": ["fail\n"]}],
                                  rubric={" fail": {"definition": "wrong"}}), "s.yaml")
    field = schema.label_field
    assert field is not None and field.values == ["pass", "fail"] and field.failing == ["fail"]
    assert list(schema.rubric) == ["fail"]


def test_queue_names_and_mapping_labels_are_trimmed() -> None:
    with pytest.raises(ConfigError, match="unique"):  # "low\n" is "low"
        parse_rules("queues:\n  - name: \"low\\n\"\n  - name: low\n", "r.yaml")
    with pytest.raises(ConfigError, match="control characters"):
        parse_rules("queues:\n  - name: \"lo\\nw\"\n", "r.yaml")
    rules = parse_rules("queues:\n  - name: ' low '\n", "r.yaml")
    assert rules.queues[0].name == "low"
    mapping = parse_mapping("schema: {id: default, version: 1}\nchannels:\n  thumbs:\n"
                            "    up: {label: ' pass ', score: 1.0}\n", "m.yaml")
    assert mapping.channels.thumbs.up.label == "pass"


CATASTROPHIC = """\
schema: default
from_version: 1
to_version: 2
steps:
  - split: {field: categories, from: wrong, otherwise: null,
            rules: [{to: wrong_number, explanation_matches: "PATTERN"}]}
"""


def test_a_catastrophic_regex_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split-rule regexes run on the ``regex`` package with a time limit. ``^(a+)+$``
    (5.4 s on 27 characters with Python's re, doubling with each one) is fast there;
    ``^(a|a)+$`` still backtracks exponentially, and is cut off naming the rule."""
    monkeypatch.setenv("LS_LLMTRACE_REGEX_TIMEOUT_S", "0.2")
    fast = parse_migration(CATASTROPHIC.replace("PATTERN", "^(a+)+$"), "m.yaml")
    began = time.monotonic()
    moved = move_values(fast, "categories", ["wrong"], Evidence("a" * 27 + "b"))
    assert moved.reviews and time.monotonic() - began < 1
    slow = parse_migration(CATASTROPHIC.replace("PATTERN", "^(a|a)+$"), "m.yaml")
    began = time.monotonic()
    with pytest.raises(MigrationError) as err:
        move_values(slow, "categories", ["wrong"], Evidence("a" * 40 + "b"))
    assert time.monotonic() - began < 5
    message = str(err.value)
    assert "m.yaml" in message and "explanation_matches" in message
    assert "LS_LLMTRACE_REGEX_TIMEOUT_S" in message
    # a normal explanation is matched as before
    assert move_values(slow, "categories", ["wrong"], Evidence("aaaa")).values == [
        "wrong_number"]


@pytest.mark.parametrize("scale", ["{min: -.inf, max: 5}", "{min: 1, max: .inf}",
                                   "{min: .nan, max: 5}"])
def test_numeric_scales_must_be_finite(scale: str) -> None:
    text = f"schema: {{id: default, version: 1}}\nchannels:\n  qa:\n    scale: {scale}\n"
    with pytest.raises(ConfigError, match=r"m\.yaml: channels\.qa\.scale\.m(in|ax)"):
        parse_mapping(text, "m.yaml")


def test_infinite_numbers_elsewhere_in_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sample_rate"):
        parse_rules("queues:\n  - name: a\n    sample_rate: .nan\n", "r.yaml")
    with pytest.raises(SchemaError, match="step"):
        parse_schema(_schema(fields=[{"type": "label"}, {"type": "score", "step": ".nan"}]),
                     "s.yaml")


def test_cli_says_one_line_and_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    for name, text in (("bad.v1.yaml", _schema(title="bad\x01title")),
                       ("bad.v1.yaml", _schema(title="\ud800")),
                       ("bad.v1.yaml", "id: x\nfields: [\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = runner.invoke(main, ["schema", "generate", str(tmp_path)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and str(tmp_path / name) in lines[0], result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "bad.v1.xml").exists()
