"""OTLP/JSON trace files (OpenTelemetry), and flat span attribute maps.

Accepted: one ``{"resourceSpans": [...]}`` envelope per file (streamed per resource with
ijson) or one per line (the Collector's file exporter); ids in hex or base64; 64-bit
numbers as strings or numbers. Spans are grouped by trace id; a trace is emitted when its
root span has been read (exporters send a span when it ends, so the root comes last), and
whatever is left at the end of the file is emitted then. At most ``max_pending`` traces
wait for their root at once (the oldest is emitted first), which keeps memory flat.

A flat attribute map (``{"gen_ai.operation.name": "chat", ...}``, what span processors
and test fixtures hold) is read as a one-span trace whose id is the file name and record.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.importers.common import is_bad, iter_json_records
from ls_llmtrace.ingest.importers.spans import SpanView, build_trace, nanos_to_datetime
from ls_llmtrace.models import Rejected

_HEX = re.compile(r"^[0-9a-fA-F]+$")


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a plain Python value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return value["doubleValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if isinstance(item, dict) and "key" in item:
            out[str(item["key"])] = any_value(item.get("value"))
    return out


def decode_id(value: Any, size: int) -> str | None:
    """Lowercase hex of a trace id (16 bytes) or span id (8 bytes) given in hex or base64."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == size * 2 and _HEX.match(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


class _SpanError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def parse_span(raw: Any, resource: dict[str, Any]) -> SpanView:
    if not isinstance(raw, dict):
        raise _SpanError("(span)", "a span must be a JSON object")
    trace_id = decode_id(raw.get("traceId"), 16)
    if trace_id is None:
        raise _SpanError("traceId", f"not a 16-byte id in hex or base64: {raw.get('traceId')!r}")
    span_id = decode_id(raw.get("spanId"), 8)
    if span_id is None:
        raise _SpanError("spanId", f"not an 8-byte id in hex or base64: {raw.get('spanId')!r}")
    parent = raw.get("parentSpanId") or None
    parent_id = decode_id(parent, 8) if parent else None
    if parent and parent_id is None:
        raise _SpanError("parentSpanId", f"not an 8-byte id in hex or base64: {parent!r}")
    status = raw.get("status") or {}
    code = status.get("code") if isinstance(status, dict) else None
    error = None
    if code in (2, "2", "STATUS_CODE_ERROR", "ERROR"):
        error = str(status.get("message") or "error")
    events = [{"name": e.get("name", ""), "time": nanos_to_datetime(e.get("timeUnixNano")),
               "attributes": attributes(e.get("attributes"))}
              for e in raw.get("events") or [] if isinstance(e, dict)]
    return SpanView(trace_id=trace_id, span_id=span_id, parent_span_id=parent_id,
                    name=str(raw.get("name") or ""),
                    start=nanos_to_datetime(raw.get("startTimeUnixNano")),
                    end=nanos_to_datetime(raw.get("endTimeUnixNano")),
                    attributes=attributes(raw.get("attributes")), events=events, error=error,
                    resource=resource)


def envelope_spans(
    envelope: dict[str, Any], file: str, location: str
) -> Iterator[SpanView | Rejected]:
    resource_spans = envelope.get("resourceSpans")
    if resource_spans is None and "scopeSpans" in envelope:  # one resourceSpans item
        resource_spans = [envelope]
    if not isinstance(resource_spans, list):
        yield Rejected(file, location, "resourceSpans", "missing or not a list: is this OTLP/JSON?")
        return
    for ri, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            yield Rejected(file, location, f"resourceSpans.{ri}", "not an object")
            continue
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        for si, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
                                or []):
            for pi, raw in enumerate((ss or {}).get("spans") or []):
                try:
                    yield parse_span(raw, resource)
                except _SpanError as exc:
                    where = f"resourceSpans.{ri}.scopeSpans.{si}.spans.{pi}.{exc.field}"
                    yield Rejected(file, location, where, str(exc), str(raw)[:2000])


def is_flat_attribute_map(record: Any) -> bool:
    return (isinstance(record, dict) and "resourceSpans" not in record
            and any(isinstance(k, str) and (k.startswith("gen_ai.") or k.startswith("llm.")
                                            or k == "openinference.span.kind")
                    for k in record))


def flat_span(record: dict[str, Any], trace_id: str) -> SpanView:
    return SpanView(trace_id=trace_id, span_id="0" * 16, name=str(
        record.get("gen_ai.operation.name") or record.get("openinference.span.kind") or ""),
        attributes=dict(record))


def read_otlp(path: str | Path, max_pending: int = 10000) -> Iterator[Any]:
    """Yield a Trace per trace id and a list of Rejected per bad span or record."""
    path = Path(path)
    file = str(path)
    pending: OrderedDict[str, list[SpanView]] = OrderedDict()
    for location, record in iter_json_records(path, stream_prefix="resourceSpans.item"):
        if is_bad(record):
            yield [Rejected(file, location, "(record)", str(record), getattr(record, "raw", ""))]
            continue
        if is_flat_attribute_map(record):
            trace_id = f"{path.stem}:{location.replace(' ', '')}"
            yield build_trace(trace_id, [flat_span(record, trace_id)], "otel-attributes")
            continue
        if not isinstance(record, dict):
            yield [Rejected(file, location, "(record)", "an OTLP record must be a JSON object")]
            continue
        rejects: list[Rejected] = []
        done: list[str] = []
        for item in envelope_spans(record, file, location):
            if isinstance(item, Rejected):
                rejects.append(item)
                continue
            spans = pending.get(item.trace_id)
            if spans is None:
                spans = pending[item.trace_id] = []
            spans.append(item)
            if item.parent_span_id is None:
                done.append(item.trace_id)
        if rejects:
            yield rejects
        for trace_id in done:
            spans = pending.pop(trace_id, None)
            if spans:
                yield build_trace(trace_id, spans, "otlp")
        while len(pending) > max_pending:
            trace_id, spans = pending.popitem(last=False)
            yield build_trace(trace_id, spans, "otlp")
    for trace_id, spans in pending.items():
        yield build_trace(trace_id, spans, "otlp")
