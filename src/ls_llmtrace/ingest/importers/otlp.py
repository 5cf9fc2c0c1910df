"""OTLP/JSON trace files (OpenTelemetry), and flat span attribute maps.

Accepted: one ``{"resourceSpans": [...]}`` envelope per file (streamed per resource with
ijson) or one per line (the Collector's file exporter); ids in hex or base64; 64-bit
numbers as strings or numbers. Spans are grouped by trace id; a trace is emitted when its
root span has been read (exporters send a span when it ends, so the root comes last), and
whatever is left at the end of the file is emitted then. At most ``max_pending`` traces
wait for their root at once (the oldest is emitted first), which keeps memory flat.

Log records (``resourceLogs``: the GenAI instrumentations' message events, linked to
spans by trace and span id) are read first, from the same file or from other files of the
export, and attached to their spans. Binary files are OTLP protobuf
(``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest``, via ``opentelemetry-proto``).

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

from pydantic import ValidationError

from ls_llmtrace import settings
from ls_llmtrace.ingest.importers.common import (
    RECORD_ERRORS,
    bad,
    is_bad,
    iter_json_records,
    unreadable,
)
from ls_llmtrace.ingest.importers.spans import (
    DETAILS_EVENTS,
    SpanView,
    build_trace,
    nanos_to_datetime,
)
from ls_llmtrace.models import Rejected, Trace, rejects_from_validation

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
        array = value["arrayValue"] if isinstance(value["arrayValue"], dict) else {}
        items = array.get("values")
        return [any_value(v) for v in items] if isinstance(items, list) else []
    if "kvlistValue" in value:
        kvlist = value["kvlistValue"] if isinstance(value["kvlistValue"], dict) else {}
        return attributes(kvlist.get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, dict) and "key" in item:
            value = item.get("value")
            # the commonest AnyValue read inline: a call per attribute adds up
            if type(value) is dict and "stringValue" in value:
                out[str(item["key"])] = value["stringValue"]
            else:
                out[str(item["key"])] = any_value(value)
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
    raw_events = raw.get("events")
    events = [{"name": str(e.get("name") or ""),
               "time": nanos_to_datetime(e.get("timeUnixNano")),
               "attributes": attributes(e.get("attributes"))}
              for e in raw_events if isinstance(e, dict)
              ] if raw_events and isinstance(raw_events, list) else []
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
        resource_raw = rs.get("resource")
        resource = attributes(resource_raw.get("attributes")
                              if isinstance(resource_raw, dict) else None)
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        for si, ss in enumerate(scopes if isinstance(scopes, list) else []):
            raw_spans = ss.get("spans") if isinstance(ss, dict) else None
            for pi, raw in enumerate(raw_spans if isinstance(raw_spans, list) else []):
                try:
                    yield parse_span(raw, resource)
                except _SpanError as exc:
                    where = f"resourceSpans.{ri}.scopeSpans.{si}.spans.{pi}.{exc.field}"
                    yield Rejected(file, location, where, str(exc), str(raw)[:2000])
                except RECORD_ERRORS as exc:
                    yield unreadable(file, f"{location}: resourceSpans.{ri}.scopeSpans.{si}"
                                     f".spans.{pi}", exc, raw)


def is_flat_attribute_map(record: Any) -> bool:
    return (isinstance(record, dict) and "resourceSpans" not in record
            and "resourceLogs" not in record
            and any(isinstance(k, str) and (k.startswith("gen_ai.") or k.startswith("llm.")
                                            or k.startswith("ai.")
                                            or k == "openinference.span.kind")
                    for k in record))


def flat_span(record: dict[str, Any], trace_id: str) -> SpanView:
    return SpanView(trace_id=trace_id, span_id="0" * 16, name=str(
        record.get("gen_ai.operation.name") or record.get("openinference.span.kind")
        or record.get("operation.name") or ""), attributes=dict(record))


# --- log records (GenAI events) ----------------------------------------------------------

SpanKey = tuple[str, str]


def log_event(raw: Any) -> tuple[SpanKey | None, dict[str, Any]]:
    """One OTLP log record as ((trace id, span id) or None, event)."""
    if not isinstance(raw, dict):
        raise _SpanError("(logRecord)", "a log record must be a JSON object")
    attrs = attributes(raw.get("attributes"))
    body = any_value(raw.get("body"))
    name = str(raw.get("eventName") or attrs.pop("event.name", "") or "")
    if isinstance(body, dict):
        for key, value in body.items():
            attrs.setdefault(key, value)
    elif body not in (None, ""):
        attrs.setdefault("body", body)
    trace_id = decode_id(raw.get("traceId"), 16)
    span_id = decode_id(raw.get("spanId"), 8)
    event = {"name": name, "attributes": attrs,
             "time": nanos_to_datetime(raw.get("timeUnixNano") or raw.get("observedTimeUnixNano"))}
    return ((trace_id, span_id) if trace_id and span_id else None), event


def envelope_logs(envelope: dict[str, Any], file: str, location: str
                  ) -> Iterator[tuple[SpanKey | None, dict[str, Any]] | Rejected]:
    resource_logs = envelope.get("resourceLogs")
    if not isinstance(resource_logs, list):
        return
    for ri, rl in enumerate(resource_logs):
        if not isinstance(rl, dict):
            yield Rejected(file, location, f"resourceLogs.{ri}", "not an object")
            continue
        scopes = rl.get("scopeLogs")
        for si, sl in enumerate(scopes if isinstance(scopes, list) else []):
            records = sl.get("logRecords") if isinstance(sl, dict) else None
            for li, raw in enumerate(records if isinstance(records, list) else []):
                try:
                    yield log_event(raw)
                except RECORD_ERRORS as exc:
                    yield unreadable(file, f"{location}: resourceLogs.{ri}.scopeLogs.{si}"
                                     f".logRecords.{li}", exc, raw)
                except _SpanError as exc:
                    yield Rejected(file, location,
                                   f"resourceLogs.{ri}.scopeLogs.{si}.logRecords.{li}.{exc.field}",
                                   str(exc), str(raw)[:2000])


def attach_events(span: SpanView, events: list[dict[str, Any]]) -> None:
    """Log-record events into their span: a call's details event gives its attributes
    (the span's own win), the older per-message events join the span's events."""
    for event in events:
        if event["name"] in DETAILS_EVENTS or "gen_ai.input.messages" in event["attributes"]:
            for key, value in event["attributes"].items():
                span.attributes.setdefault(key, value)
        else:
            span.events.append(event)


def _has_logs(path: Path) -> bool:
    """Whether a JSON file holds OTLP log records (a byte scan, no parsing)."""
    import mmap

    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                  access=mmap.ACCESS_READ) as data:
            return data.find(b'"resourceLogs"') >= 0
    except (OSError, ValueError):  # empty files cannot be mapped
        return False


def _records(path: Path, prefix: str) -> Iterator[tuple[str, Any]]:
    if is_protobuf(path):
        yield from protobuf_records(path)
    else:
        yield from iter_json_records(path, stream_prefix=prefix)


def collect_logs(paths: list[Path], rejects: list[Rejected]
                 ) -> dict[SpanKey, list[dict[str, Any]]]:
    """Every GenAI log event of the files, by the span it belongs to."""
    out: dict[SpanKey, list[dict[str, Any]]] = {}
    for path in paths:
        if not is_protobuf(path) and not _has_logs(path):
            continue
        for location, record in _records(path, "resourceLogs.item"):
            if is_bad(record) or not isinstance(record, dict) or "resourceLogs" not in record:
                continue
            for item in envelope_logs(record, str(path), location):
                if isinstance(item, Rejected):
                    rejects.append(item)
                    continue
                key, event = item
                if key is not None:
                    out.setdefault(key, []).append(event)
    return out


# --- protobuf ---------------------------------------------------------------------------

def is_protobuf(path: Path) -> bool:
    """A binary file (not JSON text): read as OTLP protobuf."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    stripped = head.lstrip()
    if not stripped:
        return False
    if stripped[:1] in (b"{", b"["):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\x00" in head or head[:1] == b"\x0a"


def protobuf_records(path: Path) -> Iterator[tuple[str, Any]]:
    """An ``ExportTraceServiceRequest`` or ``ExportLogsServiceRequest`` file as the OTLP/JSON
    dict it stands for (protobuf's JSON mapping: camelCase, base64 ids)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    size = path.stat().st_size
    if size > settings.max_record_bytes():
        yield "record 0", bad(f"a protobuf file of {size} bytes is larger than "
                              f"LS_LLMTRACE_MAX_RECORD_BYTES ({settings.max_record_bytes()})", "")
        return
    data = path.read_bytes()
    problems = []
    for kind in (ExportTraceServiceRequest, ExportLogsServiceRequest):
        try:
            message = kind.FromString(data)
        except DecodeError as exc:
            problems.append(str(exc))
            continue
        if kind is ExportTraceServiceRequest and any(
                len(span.trace_id) == 16 for rs in message.resource_spans
                for ss in rs.scope_spans for span in ss.spans):
            yield "record 0", json_format.MessageToDict(message)
            return
        if kind is ExportLogsServiceRequest and any(
                sl.log_records for rl in message.resource_logs for sl in rl.scope_logs):
            yield "record 0", json_format.MessageToDict(message)
            return
    yield "record 0", bad("not an OTLP ExportTraceServiceRequest or ExportLogsServiceRequest "
                          "(no spans, no log records)", "")


def build_or_reject(trace_id: str, spans: list[SpanView], source: str, file: str,
                    where: str) -> Trace | list[Rejected]:
    """The trace of these spans, or its rejects (named ``where`` in ``file``): one bad
    trace never raises."""
    try:
        return build_trace(trace_id, spans, source)
    except ValidationError as exc:
        return rejects_from_validation(exc, file, where, "")
    except RECORD_ERRORS as exc:
        return [unreadable(file, where, exc)]


def _build(trace_id: str, spans: list[SpanView], source: str, file: str, location: str
           ) -> Trace | list[Rejected]:
    return build_or_reject(trace_id, spans, source, file, f"{location} (trace {trace_id})")


# --- the reader --------------------------------------------------------------------------

def read_otlp(path: str | Path, max_pending: int = 10000, logs: list[Path] | None = None
              ) -> Iterator[Any]:
    """Yield a Trace per trace id and a list of Rejected per bad span or record.

    Log records (GenAI events) in the file itself or in ``logs`` (other files of the same
    export) are attached to their spans before each trace is assembled."""
    path = Path(path)
    file = str(path)
    log_rejects: list[Rejected] = []
    events = collect_logs([path, *(Path(p) for p in logs or [])], log_rejects)
    if log_rejects:
        yield log_rejects
    pending: OrderedDict[str, list[SpanView]] = OrderedDict()
    for location, record in _records(path, "resourceSpans.item"):
        if is_bad(record):
            yield [Rejected(file, location, "(record)", str(record), getattr(record, "raw", ""))]
            continue
        if is_flat_attribute_map(record):
            trace_id = f"{path.stem}:{location.replace(' ', '')}"
            yield _build(trace_id, [flat_span(record, trace_id)], "otel-attributes", file,
                         location)
            continue
        if not isinstance(record, dict):
            yield [Rejected(file, location, "(record)", "an OTLP record must be a JSON object")]
            continue
        if "resourceLogs" in record and "resourceSpans" not in record:
            continue  # read before the spans
        rejects: list[Rejected] = []
        done: list[str] = []
        for item in envelope_spans(record, file, location):
            if isinstance(item, Rejected):
                rejects.append(item)
                continue
            found = events.pop((item.trace_id, item.span_id), None) if events else None
            if found:
                attach_events(item, found)
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
                yield _build(trace_id, spans, "otlp", file, location)
        while len(pending) > max_pending:
            trace_id, spans = pending.popitem(last=False)
            yield _build(trace_id, spans, "otlp", file, location)
    for trace_id, spans in pending.items():
        yield _build(trace_id, spans, "otlp", file, f"trace {trace_id}")
    if events:
        yield [Rejected(file, "end of file", "logRecords.spanId",
                        f"{sum(len(v) for v in events.values())} log records name spans that "
                        f"are not in the export (e.g. trace {key[0]} span {key[1]}): pass the "
                        "span file and its log file together", "") for key in list(events)[:1]]
