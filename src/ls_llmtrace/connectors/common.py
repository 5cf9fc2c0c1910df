"""What the connectors share: traces pulled through the OTLP importer, and the reviewer
records a push sends (each with a hash of what is sent, so a re-push can skip it)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.models import AnnotationRecord, Rejected, Source, Trace
from ls_llmtrace.store import Store

_SNAKE_KEYS = {
    "trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId",
    "start_time_unix_nano": "startTimeUnixNano", "end_time_unix_nano": "endTimeUnixNano",
    "time_unix_nano": "timeUnixNano", "string_value": "stringValue",
    "int_value": "intValue", "double_value": "doubleValue", "bool_value": "boolValue",
    "array_value": "arrayValue", "kvlist_value": "kvlistValue", "bytes_value": "bytesValue",
    "trace_state": "traceState", "dropped_attributes_count": "droppedAttributesCount",
}


def camel_otlp(value: Any) -> Any:
    """OTLP/JSON written with the protobuf field names (``span_id``, ``string_value``) and
    explicit nulls, as some tools serve it, in the lowerCamelCase form of the OTLP/JSON
    specification (both spellings are valid protobuf JSON); nulls are dropped."""
    if isinstance(value, dict):
        return {_SNAKE_KEYS.get(k, k): camel_otlp(v) for k, v in value.items()
                if v is not None}
    if isinstance(value, list):
        return [camel_otlp(v) for v in value]
    return value


def traces_from_spans(spans: list[dict[str, Any]], source: str
                      ) -> Iterator[Trace | list[Rejected]]:
    """Assemble OTLP/JSON spans (any number of traces) with the OTLP importer, each
    trace marked as coming from ``source``: the same reading as ``import`` gives a file."""
    envelope = {"resourceSpans": [{"resource": {"attributes": []},
                                   "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    with tempfile.TemporaryDirectory(prefix="ls-llmtrace-pull-") as tmp:
        path = Path(tmp) / f"{source}.otlp.json"
        path.write_text(json.dumps(envelope), encoding="utf-8")
        for item in read_any(path, "otlp"):
            if isinstance(item, Trace):
                yield item.model_copy(update={"source": source})
            else:
                yield item


def content_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str)
                          .encode()).hexdigest()


@dataclass
class PushSummary:
    """What a push did: sent (new or changed), unchanged (skipped), and why others were
    left out."""

    sent: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # what the tool said of items it refused

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def line(self, tool: str) -> str:
        left = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (f"{tool}: {self.sent} sent, {self.unchanged} unchanged"
                + (f"; left out: {left}" if left else ""))


def pushable_records(store: Store, source: str, summary: PushSummary
                     ) -> Iterator[tuple[AnnotationRecord, Trace]]:
    """The live reviewer records on traces pulled from ``source``, with their trace."""
    traces: dict[str, Trace | None] = {}
    for record in store.records(source=Source.reviewer.value):
        if record.was_cancelled or record.deleted:
            summary.skip("skipped or deleted annotations")
            continue
        if record.trace_id not in traces:
            traces[record.trace_id] = store.trace(record.trace_id)
        trace = traces[record.trace_id]
        if trace is None or trace.source != source:
            continue
        yield record, trace


def root_span_id(trace: Trace) -> str | None:
    """The trace's root span: the one whose parent is not in the trace."""
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_span_id not in ids]
    roots.sort(key=lambda s: (s.start_time is None, s.start_time or 0, s.span_id))
    return roots[0].span_id if roots else None


def record_metadata(record: AnnotationRecord) -> dict[str, Any]:
    """What a pushed annotation carries besides label, score and explanation."""
    meta: dict[str, Any] = {
        "source": "ls-llmtrace", "record_key": record.record_key,
        "schema": f"{record.schema_id}@v{record.schema_version}",
        "reviewer": record.author, "label_studio_task": record.ls_task_id,
        "label_studio_project": record.ls_project_id,
    }
    if record.labels:
        meta["categories"] = list(record.labels)
    if record.corrected_output is not None:
        meta["corrected_output"] = record.corrected_output
    if record.ground_truth:
        meta["ground_truth"] = True
    return {k: v for k, v in meta.items() if v is not None}
