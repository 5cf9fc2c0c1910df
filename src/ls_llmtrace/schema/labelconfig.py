"""Label Studio labeling configs generated from a schema version (pure functions).

Trace content is only ever shown through ``Text``, ``Paragraphs`` and ``Table``, which
render text, never HTML; every attribute is escaped by the XML serializer. The output is
deterministic so the checked-in configs in ``label_configs/`` can be checked for drift.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ls_llmtrace.schema.model import AnnotationSchema, LabelField, ScoreField

# Control names the sync maps back from; fixed by field type.
VERDICT = "verdict"
SCORE = "score"
EXPLANATION = "explanation"
CORRECTED_OUTPUT = "corrected_output"
ANSWER = "answer"
CONVERSATION = "conversation"
# Reserved for the controls planned next (failure categories, span labels, pairwise):
CATEGORIES = "categories"  # Choices, failure categories, visible only when verdict is failing
ANSWER_SPANS = "answer_spans"  # Labels on the `answer` Text
MESSAGE_SPANS = "message_spans"  # ParagraphLabels on the `conversation` Paragraphs
PREFERENCE = "preference"  # Choices left/right/tie/both_bad of a pairwise task
PREFERENCE_REASON = "preference_reason"  # TextArea, the optional reason of a preference
STEP = "step_"  # Text of agent step N (from 0): step_0, step_1, ...
STEP_LABELS = "step_labels_"  # Choices on agent step N: step_labels_0, ...
FIRST_FAILING_STEP = "first_failing_step"  # Number, the first failing step (from 1)


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _hinted(parent: ET.Element, tag: str, schema: AnnotationSchema, value: str) -> None:
    entry = schema.rubric.get(value)
    attrs = {"value": value}
    if entry:
        attrs["hint"] = entry.definition.strip()
    _el(parent, tag, **attrs)


def _span_labels(parent: ET.Element, schema: AnnotationSchema, target: str) -> None:
    """The span-label palette for one object, if the schema marks ranges there."""
    field = schema.span_field
    if field is None or target not in field.targets:
        return
    if target == "answer":
        labels = _el(parent, "Labels", name=ANSWER_SPANS, toName=ANSWER)
    else:
        labels = _el(parent, "ParagraphLabels", name=MESSAGE_SPANS, toName=CONVERSATION)
    for value in field.labels:
        _hinted(labels, "Label", schema, value)


def build_label_config(schema: AnnotationSchema) -> str:
    """The XML label config of one schema version."""
    root = ET.Element("View")
    _el(root, "Header", value=f"{schema.title or schema.id} (schema {schema.version_id})", size="4")
    _el(root, "Table", name="metadata", value="$metadata")
    _el(root, "Header", value="System prompt", size="5")
    _el(root, "Text", name="system_prompt", value="$system_prompt")
    _el(root, "Header", value="Conversation", size="5")
    _span_labels(root, schema, "messages")
    _el(root, "Paragraphs", name=CONVERSATION, value="$messages", layout="dialogue",
        nameKey="role", textKey="content")
    _el(root, "Header", value="Tool calls", size="5")
    _el(root, "Paragraphs", name="tool_calls", value="$tool_calls", layout="dialogue",
        nameKey="name", textKey="content")
    _el(root, "Header", value="Retrieved documents", size="5")
    _el(root, "Paragraphs", name="documents", value="$documents", nameKey="title",
        textKey="content")
    steps_view(root, schema)
    _el(root, "Header", value="Final answer", size="5")
    _span_labels(root, schema, "answer")
    _el(root, "Text", name=ANSWER, value="$answer")

    for field in schema.fields:
        if isinstance(field, LabelField):
            _el(root, "Header", value="Verdict", size="5")
            choices = _el(root, "Choices", name=VERDICT, toName=ANSWER, choice="single-radio",
                          showInline="true", required="true" if field.required else "false")
            for value in field.values:
                _hinted(choices, "Choice", schema, value)
            if field.categories:
                # Shown only once a failing verdict is chosen (Label Studio reads a
                # comma-separated list of values; names cannot contain commas).
                _el(root, "Header", value="Failure categories (when the verdict is "
                    + " or ".join(field.failing) + ")", size="5")
                cats = _el(root, "Choices", name=CATEGORIES, toName=ANSWER, choice="multiple",
                           showInline="true", visibleWhen="choice-selected",
                           whenTagName=VERDICT, whenChoiceValue=",".join(field.failing))
                for value in field.categories:
                    _hinted(cats, "Choice", schema, value)
            first_failing_step(root, schema)
        elif isinstance(field, ScoreField) and field.is_rating:
            _el(root, "Header", value=f"Score (1 star = worst, {field.max_rating} = best)",
                size="5")
            _el(root, "Rating", name=SCORE, toName=ANSWER, maxRating=str(field.max_rating),
                icon="star", size="medium")
        elif isinstance(field, ScoreField):
            _el(root, "Header", value="Score (0.0 = worst, 1.0 = best)", size="5")
            _el(root, "Number", name=SCORE, toName=ANSWER, min="0", max="1", step=f"{field.step:g}")
        elif field.type == "explanation":
            _el(root, "Header", value="Explanation", size="5")
            _el(root, "TextArea", name=EXPLANATION, toName=ANSWER, rows="3", editable="true",
                maxSubmissions="1", placeholder="Why? Quote the part that is wrong.")
        elif field.type == "corrected_output":
            _el(root, "Header", value="Corrected output", size="5")
            _el(root, "TextArea", name=CORRECTED_OUTPUT, toName=ANSWER, rows="5", editable="true",
                maxSubmissions="1", placeholder="What the answer should have been.")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


_STEP_CONTROL = re.compile(re.escape(STEP_LABELS) + r"(\d{1,6})")


def step_index(control_name: str | None) -> int | None:
    """The step (from 0) of a step-label control's name (``step_labels_3`` -> 3), else
    None."""
    match = _STEP_CONTROL.fullmatch(control_name or "")
    return int(match.group(1)) if match else None


def steps_view(parent: ET.Element, schema: AnnotationSchema) -> None:
    """An agent trace's numbered steps (``$steps``, written by the converter; none for a
    single call, so nothing is drawn), each with the schema's step labels to mark it
    failing. Label Studio's ``Repeater`` names each step's controls by its index."""
    values = schema.step_labels
    if not values:
        return
    head = _el(parent, "Repeater", on="$steps_shown", indexFlag="{{h}}")
    _el(head, "Header", value="Agent steps (mark the steps that went wrong)", size="5")
    each = _el(_el(parent, "Repeater", on="$steps", indexFlag="{{n}}"), "View",
               className="llmt-step")
    _el(each, "Header", value="$steps[{{n}}].title", size="6")
    _el(_el(each, "View", className="llmt-pre"), "Text", name=STEP + "{{n}}",
        value="$steps[{{n}}].text")
    marks = _el(each, "Choices", name=STEP_LABELS + "{{n}}", toName=STEP + "{{n}}",
                choice="multiple", showInline="true")
    for value in values:
        _hinted(marks, "Choice", schema, value)


def first_failing_step(parent: ET.Element, schema: AnnotationSchema) -> None:
    """The number of the first failing step, where the schema asks for it, on an agent
    trace (drawn once when the task has steps)."""
    field = schema.label_field
    if field is None or not field.first_failing_step:
        return
    shown = _el(parent, "Repeater", on="$steps_shown", indexFlag="{{f}}")
    view = _el(shown, "View", visibleWhen="choice-selected", whenTagName=VERDICT,
               whenChoiceValue=",".join(field.failing))
    _el(view, "Header", value="First failing step (its number)", size="5")
    _el(view, "Number", name=FIRST_FAILING_STEP, toName=ANSWER, min="1", step="1")


def build_instructions(schema: AnnotationSchema) -> str:
    """HTML instructions for the Label Studio project: the rubric, every text escaped."""
    esc = html.escape
    parts = [f"<h3>{esc(schema.title or schema.id)} &mdash; schema {esc(schema.version_id)}</h3>"]
    if schema.description:
        parts.append(f"<p>{esc(schema.description.strip())}</p>")
    parts.append(f"<p>Owner (settles disagreements): {esc(schema.owner)}</p>")
    for label, entry in schema.rubric.items():
        parts.append(f"<h4>{esc(label)}</h4><p>{esc(entry.definition.strip())}</p>")
        if entry.positive_examples:
            items = "".join(f"<li>{esc(x)}</li>" for x in entry.positive_examples)
            parts.append(f"<p>Examples:</p><ul>{items}</ul>")
        if entry.negative_examples:
            items = "".join(f"<li>{esc(x)}</li>" for x in entry.negative_examples)
            parts.append(f"<p>Not this:</p><ul>{items}</ul>")
    return "\n".join(parts)


def config_path(schema: AnnotationSchema, directory: Path) -> Path:
    return directory / f"{schema.id}.v{schema.version}.xml"


def write_label_config(schema: AnnotationSchema, directory: Path) -> Path:
    path = config_path(schema, directory)
    path.write_text(build_label_config(schema), encoding="utf-8")
    return path


_SCHEMA_IN_HEADER = re.compile(r"\(schema ([a-z0-9_\-]+@v\d+)\)\Z")


@dataclass(frozen=True)
class Control:
    name: str
    tag: str
    to_name: str
    values: tuple[str, ...] = ()


def parse_controls(config: str) -> dict[str, Control]:
    """The control tags of a label config, by name (reads what Label Studio sends)."""
    root = ET.fromstring(config)
    controls: dict[str, Control] = {}
    for el in root.iter():
        to_name = el.get("toName")
        name = el.get("name")
        if not to_name or not name:
            continue
        values = tuple(c.get("value", "") for c in el if c.tag in ("Choice", "Label"))
        controls[name] = Control(name, el.tag, to_name, values)
    return controls


def schema_version_of(config: str) -> str | None:
    """The schema version id a generated config was made from, if it is one of ours: the
    end of its first ``Header`` (which the generator writes last, after the title)."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return None
    header = next(root.iter("Header"), None)
    match = _SCHEMA_IN_HEADER.search(header.get("value") or "") if header is not None \
        else None
    return match.group(1) if match else None
