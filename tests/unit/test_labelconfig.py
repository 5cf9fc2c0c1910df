"""labelconfig.py: deterministic XML, no drift from the checked-in config, controls, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ls_llmtrace.schema.labelconfig import (
    ANSWER,
    build_instructions,
    build_label_config,
    config_path,
    parse_controls,
    schema_version_of,
    write_label_config,
)
from ls_llmtrace.schema.model import load_schema, parse_schema

from .paths import DEFAULT_XML, DEFAULT_YAML, LABEL_CONFIGS

XSS_SCHEMA = """\
id: xss
version: 1
title: "Tricky <b>title</b> & co"
owner: "Mallory <mallory@example.com>"
description: "Look for <img src=x onerror=alert(2)>"
fields:
  - type: label
    values: [pass, fail]
  - type: score
    step: 0.25
rubric:
  fail:
    definition: 'Bad answer <script>alert(1)</script> "quoted" & more'
    positive_examples: ["<i>example</i>"]
    negative_examples: ["a < b"]
"""


def test_build_label_config_is_deterministic(default_schema):
    first = build_label_config(default_schema)
    second = build_label_config(load_schema(DEFAULT_YAML))
    assert first == second
    assert first.endswith("</View>\n")


def test_checked_in_config_has_not_drifted():
    """label_configs/default.v1.xml must be regenerated whenever the schema or builder changes."""
    expected = build_label_config(load_schema(DEFAULT_YAML))
    assert DEFAULT_XML.read_text(encoding="utf-8") == expected


def test_every_checked_in_schema_has_an_up_to_date_config():
    yamls = sorted(LABEL_CONFIGS.glob("*.yaml"))
    assert yamls
    for path in yamls:
        schema = load_schema(path)
        xml_path = config_path(schema, LABEL_CONFIGS)
        assert xml_path.is_file(), f"missing {xml_path}: run ls-llmtrace schema generate"
        assert xml_path.read_text(encoding="utf-8") == build_label_config(schema), xml_path


def test_generated_config_is_well_formed_xml(default_schema):
    root = ET.fromstring(build_label_config(default_schema))
    assert root.tag == "View"
    objects = {el.get("name"): (el.tag, el.get("value")) for el in root.iter()
               if el.tag in ("Text", "Paragraphs", "Table")}
    assert objects == {
        "metadata_text": ("Text", "$metadata_text"),
        "system_prompt": ("Text", "$system_prompt"),
        "conversation": ("Paragraphs", "$messages"),
        "document_{{d}}": ("Text", "$documents[{{d}}].content"),
        "step_{{n}}": ("Text", "$steps[{{n}}].text"),
        "answer": ("Text", "$answer")}
    # Trace content is never rendered through HyperText/HTML tags.
    assert not [el for el in root.iter() if el.tag in ("HyperText", "HTML")]
    # the trace beside the form; the stylesheet first
    assert [el.tag for el in root] == ["Style", "View"]
    assert [el.get("className") for el in root[1]] == ["llmt-trace", "llmt-form"]


def test_parse_controls_of_default_config(default_schema):
    controls = parse_controls(build_label_config(default_schema))
    assert set(controls) == {"verdict", "score", "judge_explanation", "explanation",
                             "corrected_output", "step_labels_{{n}}"}
    assert all(c.to_name == ANSWER for n, c in controls.items() if n != "step_labels_{{n}}")
    assert controls["step_labels_{{n}}"].values == ("fail",)  # no categories: the verdict
    verdict = controls["verdict"]
    assert verdict.tag == "Choices"
    assert verdict.values == ("pass", "fail")
    assert controls["score"].tag == "Number"
    assert controls["explanation"].tag == "TextArea"
    assert controls["corrected_output"].tag == "TextArea"
    assert controls["score"].values == ()


def test_parse_controls_of_checked_in_file():
    controls = parse_controls(DEFAULT_XML.read_text(encoding="utf-8"))
    assert controls["verdict"].values == ("pass", "fail")
    assert controls["verdict"].to_name == "answer"


def test_schema_version_of():
    assert schema_version_of(DEFAULT_XML.read_text(encoding="utf-8")) == "default@v1"
    assert schema_version_of("<View><Text name='t' value='$t'/></View>") is None
    assert schema_version_of("") is None


def test_config_only_has_controls_for_schema_fields(mini_schema):
    config = build_label_config(mini_schema)
    assert set(parse_controls(config)) == {"verdict", "judge_explanation", "step_labels_{{n}}"}
    assert schema_version_of(config) == "mini@v2"


def test_score_step_and_required_flag():
    schema = parse_schema(XSS_SCHEMA, "xss.yaml")
    root = ET.fromstring(build_label_config(schema))
    number = next(el for el in root.iter("Number"))
    assert number.get("step") == "0.25"
    assert (number.get("min"), number.get("max")) == ("0", "1")
    choices = next(el for el in root.iter("Choices") if el.get("name") == "verdict")
    assert choices.get("required") == "true"


def test_hostile_text_round_trips_through_xml_attributes():
    schema = parse_schema(XSS_SCHEMA, "xss.yaml")
    config = build_label_config(schema)
    assert "<script>" not in config
    assert "<b>title</b>" not in config
    root = ET.fromstring(config)  # still parses
    hints = {c.get("value"): c.get("hint") for c in root.iter("Choice")}
    assert hints == {"pass": None,
                     "fail": 'Bad answer <script>alert(1)</script> "quoted" & more'}
    header = next(root.iter("Header"), None)
    assert header is not None
    assert header.get("value") == "Tricky <b>title</b> & co (schema xss@v1)"
    assert schema_version_of(config) == "xss@v1"


def test_build_instructions_escapes_html():
    schema = parse_schema(XSS_SCHEMA, "xss.yaml")
    html_text = build_instructions(schema)
    assert "<script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "&quot;quoted&quot; &amp; more" in html_text
    assert "<img" not in html_text
    assert "&lt;img src=x onerror=alert(2)&gt;" in html_text
    assert "Tricky &lt;b&gt;title&lt;/b&gt; &amp; co" in html_text
    assert "Mallory &lt;mallory@example.com&gt;" in html_text
    assert "<li>&lt;i&gt;example&lt;/i&gt;</li>" in html_text
    assert "<li>a &lt; b</li>" in html_text
    assert "xss@v1" in html_text


def test_build_instructions_of_default_schema(default_schema):
    text = build_instructions(default_schema)
    assert "default@v1" in text
    assert "quality-lead@example.com" in text
    assert "<h4>pass</h4>" in text and "<h4>fail</h4>" in text
    assert text.index("<h4>pass</h4>") < text.index("<h4>fail</h4>")


def test_write_label_config(tmp_path, default_schema):
    path = write_label_config(default_schema, tmp_path)
    assert path == config_path(default_schema, tmp_path)
    assert path.name == "default.v1.xml"
    assert path.read_text(encoding="utf-8") == build_label_config(default_schema)
