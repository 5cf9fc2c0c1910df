"""Pairwise review: two answers to the same input, side by side, blind (pure).

Two traces pair when their input (system prompt and conversation) hashes the same and
they differ in the compared field (model version, prompt version...). The screen names
no model, prompt or trace: the two answers are "A (left)" and "B (right)", and which
trace goes on which side is decided per pair from a hash of the pair id, so about half
the pairs are swapped and position bias can be measured. The side -> trace mapping is
kept in the task's ``meta`` (``pair_sides``), which the labeling UI and the Data Manager
never show; the sync undoes it (``records/mapping.py``). The reviewer picks left, right,
tie or both bad, with an optional reason.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from typing import Any

from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.labelconfig import PREFERENCE, PREFERENCE_REASON
from ls_llmtrace.schema.model import AnnotationSchema

PAIR_PREFIX = "pair:"
# What the reviewer can answer: the stored value (the choice's alias) and what is shown.
CHOICES = {"left": "A (left) is better", "right": "B (right) is better",
           "tie": "Tie: equally good", "both_bad": "Both bad"}
# Texts keep their whitespace; Paragraphs' audio timestamps and author filter (meaningless
# for a chat) are hidden, as on the review screen (schema/labelconfig.py).
_STYLE = """
.pair-review .llmt-pre, .pair-review .llmt-pre .lsf-richtext__container,
.pair-answer .lsf-richtext__container { white-space: pre-wrap; overflow-wrap: anywhere; }
.pair-review .lsf-paragraphs [class^="wrapper_header--"],
.pair-review .lsf-paragraphs [class^="time--"] { display: none; }
"""


def input_hash(trace: Trace) -> str:
    """A stable hash of what the model was given (system prompt and conversation)."""
    body = json.dumps([trace.system_prompt.strip(),
                       [(m.role, m.content.strip()) for m in trace.messages]],
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def pair_key(left: str, right: str) -> str:
    return f"{PAIR_PREFIX}{left}|{right}"


def order_pair(a: Trace, b: Trace) -> tuple[Trace, Trace]:
    """A fixed order (by trace id), so re-runs build the same pair and the same key."""
    return (a, b) if a.trace_id <= b.trace_id else (b, a)


def swapped(pair_id: str) -> bool:
    """Whether the pair's second trace (by id) is shown on the left: the low bit of the
    pair id's SHA-256, so the same pair always shows the same way."""
    return hashlib.sha256(pair_id.encode()).digest()[0] & 1 == 1


def build_pairwise_config(schema: AnnotationSchema) -> str:
    """The label config of a pairwise queue on one schema version."""
    top = ET.Element("View")
    ET.SubElement(top, "Style").text = _STYLE
    root = ET.SubElement(top, "View", className="pair-review")
    ET.SubElement(root, "Header", value=f"Which answer is better? (schema {schema.version_id}, "
                  "pairwise)", size="4")
    ET.SubElement(root, "Header", value="System prompt", size="5")
    ET.SubElement(ET.SubElement(root, "View", className="llmt-pre"), "Text",
                  name="system_prompt", value="$system_prompt")
    ET.SubElement(root, "Header", value="Conversation (the same for both)", size="5")
    ET.SubElement(ET.SubElement(root, "View", className="llmt-pre"), "Paragraphs",
                  name="conversation", value="$messages", layout="dialogue",
                  nameKey="role", textKey="content")
    sides = ET.SubElement(root, "View", style="display: flex; gap: 16px; align-items: stretch")
    for name, title in (("left", "Answer A (left)"), ("right", "Answer B (right)")):
        side = ET.SubElement(sides, "View", className="pair-answer",
                             style="flex: 1 1 0; min-width: 0; padding: 8px; "
                             "border: 1px solid #ccc; border-radius: 4px")
        ET.SubElement(side, "Header", value=title, size="5")
        ET.SubElement(side, "Text", name=name, value=f"${name}")
    ET.SubElement(root, "Header", value="Your choice", size="5")
    choices = ET.SubElement(root, "Choices", name=PREFERENCE, toName="left",
                            choice="single-radio", showInline="true", required="true")
    for alias, shown in CHOICES.items():
        ET.SubElement(choices, "Choice", value=shown, alias=alias)
    ET.SubElement(root, "TextArea", name=PREFERENCE_REASON, toName="left", rows="2",
                  editable="true", maxSubmissions="1", placeholder="Why? (optional)")
    ET.indent(top, space="  ")
    return ET.tostring(top, encoding="unicode") + "\n"


def _side(trace: Trace, compare: str) -> dict[str, Any]:
    value = getattr(trace.metadata, compare, None)
    return {"trace_id": trace.trace_id, "model_version": trace.metadata.model_version,
            "compare": compare, "value": None if value is None else str(value)}


def pair_task(first: Trace, second: Trace, schema: AnnotationSchema, compare: str,
              options: ReviewOptions | None = None) -> dict[str, Any]:
    """The task JSON for one pair (``first``, ``second`` as ``order_pair`` gives them;
    context from the first trace: the input is the same). Nothing in ``data`` says which
    trace, model or prompt a side is; ``meta.pair_sides`` does."""
    key = pair_key(first.trace_id, second.trace_id)
    left, right = (second, first) if swapped(key) else (first, second)
    base = trace_to_task(left, schema, options)["data"]
    right_data = trace_to_task(right, schema, options)["data"]
    data = {
        "trace_id": key,
        "pair_id": key,
        "schema_version": schema.version_id,
        "system_prompt": base["system_prompt"],
        "messages": base["messages"],
        "left": base["answer"],
        "right": right_data["answer"],
        "input_hash": input_hash(left),
    }
    meta = {"trace_id": key, "schema_id": schema.id, "schema_version": schema.version,
            "pairwise": True,
            "pair_sides": {"left": _side(left, compare), "right": _side(right, compare),
                           "swapped": left is second}}
    return {"data": data, "meta": meta}


def is_pairwise_task(task: dict[str, Any]) -> bool:
    data = task.get("data") or {}
    meta = task.get("meta") or {}
    if not isinstance(data, dict) or not data.get("pair_id"):
        return False
    return "left_trace_id" in data or (isinstance(meta, dict) and "pair_sides" in meta)
