"""labelconfig.py, v2 features: categories shown on fail, Rating, span labels; v1 unchanged."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.schema.labelconfig import (
    ANSWER,
    ANSWER_SPANS,
    CATEGORIES,
    CONVERSATION,
    MESSAGE_SPANS,
    SCORE,
    build_label_config,
    config_path,
    parse_controls,
)
from ls_llmtrace.schema.model import load_schema, load_schema_dir, parse_schema

from .paths import LABEL_CONFIGS

V2 = LABEL_CONFIGS / "default.v2.yaml"


def test_every_config_regenerates_identically(tmp_path):
    """The drift check through the CLI: regenerate every config in a copy, compare."""
    for path in LABEL_CONFIGS.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    done = CliRunner().invoke(main, ["schema", "generate", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert done.output.count("wrote ") == len(list(LABEL_CONFIGS.glob("*.yaml")))
    schemas = load_schema_dir(LABEL_CONFIGS)
    assert len(schemas) >= 2
    for schema in schemas.values():
        fresh = config_path(schema, tmp_path).read_text(encoding="utf-8")
        checked_in = config_path(schema, LABEL_CONFIGS).read_text(encoding="utf-8")
        assert fresh == checked_in, f"{schema.version_id}: run `ls-llmtrace schema generate`"


def test_v1_has_none_of_the_new_controls():
    controls = parse_controls(build_label_config(load_schema(LABEL_CONFIGS / "default.v1.yaml")))
    assert set(controls) == {"verdict", "score", "judge_explanation", "explanation",
                             "corrected_output", "step_labels_{{n}}"}
    assert controls["score"].tag == "Number"


def test_v2_controls():
    config = build_label_config(load_schema(V2))
    controls = parse_controls(config)
    assert set(controls) == {"verdict", CATEGORIES, SCORE, "judge_explanation", "explanation",
                             "corrected_output", ANSWER_SPANS, MESSAGE_SPANS, "step_labels_{{n}}"}
    # agent steps are marked with the failure categories
    assert controls["step_labels_{{n}}"].values == controls[CATEGORIES].values
    assert controls["step_labels_{{n}}"].to_name == "step_{{n}}"
    assert controls[CATEGORIES].tag == "Choices" and controls[CATEGORIES].to_name == ANSWER
    assert controls[CATEGORIES].values == ("hallucination", "incomplete", "ignored_tool_result",
                                           "off_topic", "unsafe")
    assert controls[SCORE].tag == "Rating"
    assert controls[ANSWER_SPANS].tag == "Labels" and controls[ANSWER_SPANS].to_name == ANSWER
    assert controls[MESSAGE_SPANS].tag == "ParagraphLabels"
    assert controls[MESSAGE_SPANS].to_name == CONVERSATION
    assert controls[ANSWER_SPANS].values == ("unsupported_claim", "wrong_fact", "unsafe_content")


def _failing_view(root: ET.Element) -> ET.Element:
    [view] = [el for el in root.iter("View") if el.get("visibleWhen")]
    return view


def test_categories_visible_only_on_a_failing_verdict():
    root = ET.fromstring(build_label_config(load_schema(V2)))
    view = _failing_view(root)
    assert view.get("visibleWhen") == "choice-selected"
    assert view.get("whenTagName") == "verdict"
    assert view.get("whenChoiceValue") == "fail"
    cats = next(el for el in view.iter("Choices") if el.get("name") == CATEGORIES)
    assert cats.get("choice") == "multiple"
    hints = {c.get("value"): c.get("hint") for c in cats}
    assert hints["hallucination"] == (
        "The answer states something that nothing in the trace supports.")


def test_several_failing_values_joined_for_label_studio():
    schema = parse_schema("""
id: multi
version: 1
owner: o
fields:
  - {type: label, values: [good, bad, awful], failing: [bad, awful], categories: [x]}
""")
    root = ET.fromstring(build_label_config(schema))
    assert _failing_view(root).get("whenChoiceValue") == "bad,awful"


def test_rating_attributes():
    root = ET.fromstring(build_label_config(load_schema(V2)))
    rating = next(root.iter("Rating"))
    assert (rating.get("name"), rating.get("toName"), rating.get("maxRating")) == (
        SCORE, ANSWER, "5")
    assert not list(root.iter("Number"))


def test_span_palettes_sit_next_to_their_objects():
    root = ET.fromstring(build_label_config(load_schema(V2)))
    found = set()
    for parent in root.iter("View"):
        tags = [(el.tag, el.get("name")) for el in parent]
        for palette, obj in ((("ParagraphLabels", MESSAGE_SPANS), ("Paragraphs", CONVERSATION)),
                             (("Labels", ANSWER_SPANS), ("Text", ANSWER))):
            if obj in tags:
                assert tags.index(palette) + 1 == tags.index(obj)
                found.add(obj[1])
    assert found == {CONVERSATION, ANSWER}


def test_span_targets_limit_the_palettes():
    schema = parse_schema("""
id: answers
version: 1
owner: o
fields:
  - {type: spans, labels: [wrong], targets: [answer]}
""")
    controls = parse_controls(build_label_config(schema))
    assert set(controls) == {ANSWER_SPANS}  # no verdict: no judge's explanation either


def test_hostile_category_hint_is_escaped():
    schema = parse_schema("""
id: esc
version: 1
owner: o
fields:
  - {type: label, categories: [bad]}
rubric:
  bad: {definition: '<script>window.__pwned=1</script> & "x"'}
""")
    config = build_label_config(schema)
    assert "<script>" not in config
    cats = next(el for el in ET.fromstring(config).iter("Choice") if el.get("value") == "bad")
    assert cats.get("hint") == '<script>window.__pwned=1</script> & "x"'


def _required(view: ET.Element) -> dict[str, str | None]:
    return {el.get("name") or "": el.get("required") for el in view.iter()
            if el.get("toName")}


def test_the_rubric_is_required_on_a_failing_verdict_only():
    root = ET.fromstring(build_label_config(load_schema(V2)))
    failing = _failing_view(root)
    # inside the View shown on a failing verdict: categories and explanation required;
    # the corrected output only where the schema asks for it (v2 does not)
    assert _required(failing) == {CATEGORIES: "true", "explanation": "true",
                                  "corrected_output": "false"}
    assert all(el.get("requiredMessage") for el in failing.iter() if el.get("toName"))
    # outside it, on a pass: only the verdict, and the star rating, which a click on the
    # pre-filled star would clear
    form = next(el for el in root.iter("View") if el.get("className") == "llmt-form")
    outside = {k: v for k, v in _required(form).items() if k not in _required(failing)}
    assert outside == {"verdict": "true", SCORE: "true", "judge_explanation": None}
    rating = next(root.iter("Rating"))
    assert "clears" in (rating.get("requiredMessage") or "")


def test_corrected_output_required_on_fail_is_a_schema_option():
    schema = parse_schema("""
id: strict
version: 1
owner: o
fields:
  - {type: label, categories: [wrong]}
  - {type: explanation}
  - {type: corrected_output, required_on_fail: true}
""")
    failing = _failing_view(ET.fromstring(build_label_config(schema)))
    assert _required(failing) == {CATEGORIES: "true", "explanation": "true",
                                  "corrected_output": "true"}


def test_without_failing_values_nothing_is_hidden_or_required():
    schema = parse_schema("""
id: grade
version: 1
owner: o
fields:
  - {type: label, values: [good, ok], failing: []}
  - {type: explanation}
  - {type: corrected_output, required_on_fail: true}
""")
    root = ET.fromstring(build_label_config(schema))
    assert not [el for el in root.iter("View") if el.get("visibleWhen")]
    assert _required(root) == {"verdict": "true", "judge_explanation": None,
                               "explanation": "false", "corrected_output": "false"}
