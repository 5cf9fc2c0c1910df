"""Pairwise review: two answers to the same input, side by side (pure).

Two traces pair when their input (system prompt and conversation) hashes the same and
they differ in the compared field (model version, prompt version...). The reviewer picks
the better answer with Label Studio's ``<Pairwise>`` control; the sync maps that result
to one AnnotationRecord on the left trace (``records/mapping.py``).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from typing import Any

from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.labelconfig import PREFERENCE
from ls_llmtrace.schema.model import AnnotationSchema

PAIR_PREFIX = "pair:"


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


def build_pairwise_config(schema: AnnotationSchema) -> str:
    """The label config of a pairwise queue on one schema version."""
    root = ET.Element("View")
    ET.SubElement(root, "Header", value=f"Which answer is better? (schema {schema.version_id}, "
                  "pairwise)", size="4")
    ET.SubElement(root, "Header", value="System prompt", size="5")
    ET.SubElement(root, "Text", name="system_prompt", value="$system_prompt")
    ET.SubElement(root, "Header", value="Conversation (the same for both)", size="5")
    ET.SubElement(root, "Paragraphs", name="conversation", value="$messages", layout="dialogue",
                  nameKey="role", textKey="content")
    ET.SubElement(root, "Header", value="Left: $left_label", size="5")
    ET.SubElement(root, "Text", name="left", value="$left")
    ET.SubElement(root, "Header", value="Right: $right_label", size="5")
    ET.SubElement(root, "Text", name="right", value="$right")
    ET.SubElement(root, "Pairwise", name=PREFERENCE, toName="left,right")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _variant(trace: Trace, compare: str) -> str:
    value = getattr(trace.metadata, compare, None)
    return f"{compare} {value}" if value else "(unknown)"


def pair_task(left: Trace, right: Trace, schema: AnnotationSchema, compare: str,
              options: ReviewOptions | None = None) -> dict[str, Any]:
    """The task JSON for one pair (context from the left trace: the input is the same)."""
    base = trace_to_task(left, schema, options)["data"]
    right_data = trace_to_task(right, schema, options)["data"]
    key = pair_key(left.trace_id, right.trace_id)
    data = {
        "trace_id": key,
        "pair_id": key,
        "left_trace_id": left.trace_id,
        "right_trace_id": right.trace_id,
        "schema_version": schema.version_id,
        "system_prompt": base["system_prompt"],
        "messages": base["messages"],
        "left": base["answer"],
        "right": right_data["answer"],
        "left_label": _variant(left, compare),
        "right_label": _variant(right, compare),
        "input_hash": input_hash(left),
    }
    meta = {"trace_id": key, "schema_id": schema.id, "schema_version": schema.version,
            "pairwise": True}
    return {"data": data, "meta": meta}


def is_pairwise_task(task: dict[str, Any]) -> bool:
    data = task.get("data") or {}
    return bool(data.get("pair_id")) and "left_trace_id" in data
