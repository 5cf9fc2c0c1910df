"""Label Studio labeling configs generated from a schema version (pure functions).

Trace content is only ever shown through ``Text``, ``Paragraphs`` and ``Panel`` titles,
which render text, never HTML; every attribute is escaped by the XML serializer; the one
``Style`` block is fixed CSS, never trace content. The output is deterministic so the
checked-in configs in ``label_configs/`` can be checked for drift.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ls_llmtrace.schema.model import (
    AnnotationSchema,
    CorrectedOutputField,
    LabelField,
)

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


# The review screen's fixed stylesheet. Class names starting ``llmt-`` are this config's
# own Views; ``lsf-richtext__container`` and ``lsf-paragraphs`` are Label Studio's Text and
# Paragraphs (1.23.2). Paragraphs also draws audio timestamps and an author filter (two
# feature flags that are on by default): meaningless for a chat, so hidden here. The Data
# Manager's quick view forces its sans-serif font on everything (``!important``), so the
# monospace rules need ``!important`` too. The form is at most the labeling area's height
# (the viewport less Label Studio's top and bottom bars) and scrolls inside itself.
STYLE = """
.llmt-review { display: flex; gap: 20px; align-items: flex-start; }
.llmt-trace { flex: 1 1 0; min-width: 0; }
.llmt-form { flex: 0 0 360px; position: sticky; top: 0; max-height: calc(100vh - 100px);
  overflow-y: auto; padding: 4px 12px 12px; border-left: 1px solid #e3e3e3; }
.llmt-pre, .llmt-pre .lsf-richtext__container { white-space: pre-wrap;
  overflow-wrap: anywhere; tab-size: 4; }
.llmt-review .llmt-mono, .llmt-review .llmt-mono *,
.llmt-review .llmt-code-view:has(.llmt-code), .llmt-review .llmt-code-view:has(.llmt-code) * {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono",
  "Liberation Mono", monospace !important; }
.llmt-mono .lsf-richtext__container, .llmt-code-view:has(.llmt-code) .lsf-richtext__container {
  font-size: 13px; line-height: 18px; }
.llmt-review .lsf-paragraphs [class^="wrapper_header--"],
.llmt-review .lsf-paragraphs [class^="time--"] { display: none; }
.llmt-conversation .lsf-paragraphs [class*="dialoguetext--"] { display: block;
  max-height: 24em; overflow-y: auto; }
.llmt-judge .lsf-text-area form, .llmt-judge .lsf-text-area button,
.llmt-judge .lsf-text-area textarea, .llmt-judge [aria-label="Delete Region"] { display: none; }
.llmt-judge { color: #555; }
"""

# The judge's explanation, filled by its prediction, shown beside the reviewer's own box.
JUDGE_EXPLANATION = "judge_explanation"


def judge_lines(model_version: str | None, explanation: str) -> tuple[str, str]:
    """What the judge's explanation control shows: a heading naming the judge and its
    version, then its words."""
    return (f"Judge {model_version}:" if model_version else "Judge:", explanation)


def judge_words(lines: list[str]) -> str | None:
    """The judge's words in that control's text (the heading left out)."""
    if lines and lines[0].startswith("Judge") and lines[0].endswith(":"):
        lines = lines[1:]
    text = "\n".join(line for line in lines if line)
    return text or None


def _section(parent: ET.Element, key: str, flag: str) -> ET.Element:
    """A part of the screen drawn once per item of ``$sections.<key>`` (a list written by
    the converter: none or one item, or a document's index), so a section a trace lacks
    is not drawn. The texts themselves are read from the task's own keys (tasks of older
    releases have them in the list items instead, which changes nothing here)."""
    return _el(parent, "Repeater", on=f"$sections.{key}", indexFlag=flag)


def _code_marker(parent: ET.Element, key: str) -> None:
    """Marks the enclosing ``llmt-code-view`` as code (monospace) when the converter said
    so: an empty View drawn only then, matched by the stylesheet's ``:has()``."""
    _el(_section(parent, key, "{{c}}"), "View", className="llmt-code")


def trace_view(parent: ET.Element, schema: AnnotationSchema) -> ET.Element:
    """The trace, in sections: the title (which carries the schema version), metadata with
    the trace id first, system prompt, the conversation with tool calls where they were
    made, retrieved documents (collapsed), an agent's numbered steps and the final answer."""
    trace = _el(parent, "View", className="llmt-trace")
    _el(trace, "Header", value=f"{schema.title or schema.id} (schema {schema.version_id})",
        size="4")
    _el(_el(trace, "View", className="llmt-meta llmt-pre llmt-mono"), "Text",
        name="metadata_text", value="$metadata_text")
    prompt = _section(trace, "system_prompt", "{{s}}")
    _el(prompt, "Header", value="System prompt", size="5")
    _el(_el(prompt, "View", className="llmt-pre"), "Text", name="system_prompt",
        value="$system_prompt")
    _el(trace, "Header", value="Conversation", size="5")
    conversation = _el(trace, "View", className="llmt-conversation llmt-pre llmt-code-view")
    _code_marker(conversation, "conversation_code")
    _span_labels(conversation, schema, "messages")
    _el(conversation, "Paragraphs", name=CONVERSATION, value="$messages", layout="dialogue",
        nameKey="role", textKey="content")
    documents = _section(trace, "documents", "{{d}}")
    _el(_el(_el(documents, "Collapse", bordered="true"), "Panel",
            value="$documents[{{d}}].title"), "View", className="llmt-pre").append(
        ET.Element("Text", {"name": "document_{{d}}",
                            "value": "$documents[{{d}}].content"}))
    steps_view(trace, schema)
    _el(trace, "Header", value="Final answer", size="5")
    answer = _el(trace, "View", className="llmt-answer llmt-pre llmt-code-view")
    _code_marker(answer, "answer_code")
    _span_labels(answer, schema, "answer")
    _el(answer, "Text", name=ANSWER, value="$answer")
    return trace


def _failing_view(parent: ET.Element, field: LabelField | None) -> ET.Element:
    """What a failing verdict asks for, shown (and so enforced: Label Studio 1.23.2
    checks ``required`` only in a visible View) only once a failing value is chosen.
    Label Studio reads a comma-separated list of values; names cannot contain commas."""
    if field is None or not field.failing:
        return parent
    return _el(parent, "View", className="llmt-failing", visibleWhen="choice-selected",
               whenTagName=VERDICT, whenChoiceValue=",".join(field.failing))


def form_view(parent: ET.Element, schema: AnnotationSchema) -> ET.Element:
    """The verdict form, in a column that stays in view beside the trace: verdict, score,
    the judge's explanation (read-only), and on a failing verdict the categories, the
    reviewer's explanation and the corrected output, required by the rubric. With no
    failing verdict values nothing but the verdict is required."""
    form = _el(parent, "View", className="llmt-form")
    label = schema.label_field
    if label is not None:
        _el(form, "Header", value="Verdict", size="5")
        choices = _el(form, "Choices", name=VERDICT, toName=ANSWER, choice="single-radio",
                      showInline="true", required="true" if label.required else "false",
                      requiredMessage="Choose a verdict.")
        for value in label.values:
            _hinted(choices, "Choice", schema, value)
    score = schema.score_field
    if score is not None and score.is_rating:
        _el(form, "Header", value=f"Score (1 star = worst, {score.max_rating} = best)",
            size="5")
        # required: a click on the pre-filled star clears it, and a cleared rating must
        # not be submitted silently
        _el(form, "Rating", name=SCORE, toName=ANSWER, maxRating=str(score.max_rating),
            icon="star", size="medium", required="true",
            requiredMessage="Give a score: clicking the chosen star again clears it.")
    elif score is not None:
        _el(form, "Header", value="Score (0.0 = worst, 1.0 = best)", size="5")
        _el(form, "Number", name=SCORE, toName=ANSWER, min="0", max="1",
            step=f"{score.step:g}")
    if label is not None:  # the judge proposes a verdict, with its reasons
        judge = _el(form, "View", className="llmt-judge")
        _el(judge, "Header", value="The judge's explanation (its proposal, not yours)",
            size="6")
        _el(judge, "TextArea", name=JUDGE_EXPLANATION, toName=ANSWER, rows="1",
            editable="false", maxSubmissions="0")
    failing = _failing_view(form, label)
    enforced = failing is not form
    if label is not None and label.categories:
        _el(failing, "Header", value="Failure categories (at least one)", size="5")
        cats = _el(failing, "Choices", name=CATEGORIES, toName=ANSWER, choice="multiple",
                   showInline="true", required="true" if enforced else "false",
                   requiredMessage="A failing verdict needs at least one failure category.")
        for value in label.categories:
            _hinted(cats, "Choice", schema, value)
    first_failing_step(failing, schema)
    if schema.has("explanation"):
        _el(failing, "Header", value="Your explanation", size="5")
        _el(failing, "TextArea", name=EXPLANATION, toName=ANSWER, rows="3", editable="true",
            maxSubmissions="1", placeholder="Why? Quote the part that is wrong.",
            required="true" if enforced else "false",
            requiredMessage="A failing verdict needs your explanation: why? Quote the part "
            "that is wrong.")
    corrected = next((f for f in schema.fields if isinstance(f, CorrectedOutputField)), None)
    if corrected is not None:
        _el(failing, "Header", value="Corrected output", size="5")
        _el(failing, "TextArea", name=CORRECTED_OUTPUT, toName=ANSWER, rows="5",
            editable="true", maxSubmissions="1", placeholder="What the answer should have been.",
            required="true" if enforced and corrected.required_on_fail else "false",
            requiredMessage="A failing verdict needs the corrected output in this schema.")
    return form


def build_label_config(schema: AnnotationSchema) -> str:
    """The XML label config of one schema version: the trace on the left, the verdict
    form in a sticky column on the right."""
    root = ET.Element("View")
    ET.SubElement(root, "Style").text = STYLE
    screen = _el(root, "View", className="llmt-review")
    trace_view(screen, schema)
    form_view(screen, schema)
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
    trace (drawn once when the task has steps), in the part of the form a failing verdict
    shows."""
    field = schema.label_field
    if field is None or not field.first_failing_step:
        return
    shown = _el(parent, "Repeater", on="$steps_shown", indexFlag="{{f}}")
    _el(shown, "Header", value="First failing step (its number)", size="5")
    _el(shown, "Number", name=FIRST_FAILING_STEP, toName=ANSWER, min="1", step="1")


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
