"""Pairwise review: two answers to the same input, side by side (pure).

Two traces pair when their input (system prompt and conversation) hashes the same and
they differ in the compared field (model version, prompt version...). The reviewer picks
the better answer with Label Studio's ``<Pairwise>`` control; the result
``{"from_name": "preference", "type": "pairwise", "value": {"selected": "left"}}`` becomes
one AnnotationRecord on the left trace with label ``left`` or ``right`` and both trace ids
in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from typing import Any

from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.records.mapping import Mapped, ResultReject, _author, record_key
from ls_llmtrace.schema.labelconfig import PREFERENCE
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.timeutil import to_utc

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


def map_pairwise_annotation(task: dict[str, Any], annotation: dict[str, Any],
                            schema: AnnotationSchema, project_id: int,
                            users: dict[int, str] | None = None) -> Mapped:
    """A pairwise annotation -> one record on the left trace (label ``left``/``right``)."""
    out = Mapped()
    data = task.get("data") or {}
    left, right = data.get("left_trace_id"), data.get("right_trace_id")
    if not left or not right:
        out.rejects.append(ResultReject("data.left_trace_id", "pair task without both trace "
                                        "ids", data))
        return out
    selected = None
    for result in annotation.get("result") or []:
        value = result.get("value") or {}
        if result.get("from_name") == PREFERENCE and result.get("type") == "pairwise" \
                and value.get("selected") in ("left", "right") and selected is None:
            selected = value["selected"]
        else:
            out.rejects.append(ResultReject(str(result.get("from_name")),
                                            "a pairwise task takes one preference "
                                            "(selected: left or right)", result))
    if selected is None and not annotation.get("was_cancelled"):
        out.rejects.append(ResultReject(PREFERENCE, "no preference selected", annotation.get(
            "result")))
        return out
    created = to_utc(annotation.get("created_at"))
    out.records.append(AnnotationRecord(
        record_key=record_key(project_id, int(annotation["id"])),
        trace_id=str(left),
        # Not in the schema's own terms (no verdict): its own schema id, so a preference
        # never stands in for a trace's verdict (e.g. in golden sets).
        schema_id=f"{schema.id}/pairwise",
        schema_version=schema.version,
        source=Source.reviewer,
        scope=Scope(kind="trace"),
        label=selected,
        feedback_name=PREFERENCE,
        author=_author(annotation, users or {}),
        created_at=created,
        updated_at=to_utc(annotation.get("updated_at")) or created,
        lead_time_s=annotation.get("lead_time"),
        ls_project_id=project_id,
        ls_task_id=int(task["id"]),
        ls_annotation_id=int(annotation["id"]),
        was_cancelled=bool(annotation.get("was_cancelled")),
        metadata={"pair_id": data.get("pair_id"), "left_trace_id": left,
                  "right_trace_id": right, "preferred_trace_id":
                  {"left": left, "right": right}.get(selected or ""),
                  "left_label": data.get("left_label"), "right_label": data.get("right_label")},
    ))
    return out
