"""OTLP/HTTP request bodies in, spool items and answers out (pure).

A body is gunzipped when its ``Content-Encoding`` says gzip (never past the size limit),
decoded as ``application/x-protobuf`` (``ExportTraceServiceRequest`` /
``ExportLogsServiceRequest``, turned into OTLP/JSON by protobuf's JSON mapping) or
``application/json`` (OTLP/JSON; protobuf field names are read too), then split into one
item per span or log record. A span or record with a bad id is refused with its place in
the request and the reason; the rest is kept. Answers are the
``Export*ServiceResponse`` of the request's encoding, with ``partial_success`` when
something was refused; errors are a ``google.rpc.Status``.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from ls_llmtrace.ingest.importers.otlp import attributes, decode_id
from ls_llmtrace.store.collect import SpoolItem, SpoolReject

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# signal -> (resource list, scope list, item list) keys of its OTLP/JSON envelope
_ENVELOPE = {"traces": ("resourceSpans", "scopeSpans", "spans"),
             "logs": ("resourceLogs", "scopeLogs", "logRecords")}
_SNAKE = re.compile(r"_([a-z0-9])")


class PayloadError(Exception):
    """A request the receiver refuses whole: its HTTP status and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str | None:
    """``application/x-protobuf`` or ``application/json`` (parameters ignored), else None."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind if kind in (PROTOBUF, JSON) else None


def unpack(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent, gunzipped if it is gzip; over ``limit`` bytes either way: 413."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadError(413, f"the body is larger than {limit} bytes")
        return body
    if encoding != "gzip":
        raise PayloadError(415, f"Content-Encoding {encoding!r} is not supported: send gzip "
                                "or no encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise PayloadError(400, f"the body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadError(413, f"the body is larger than {limit} bytes once gunzipped")
    if not inflater.eof:
        raise PayloadError(400, "the gzip body is cut short")
    return out


def _camel(value: Any) -> Any:
    """OTLP/JSON keys in lowerCamelCase (the protobuf field names are valid JSON too).
    Attribute names are values (``{"key": ...}``), never keys, so they are left alone."""
    if isinstance(value, dict):
        return {(_SNAKE.sub(lambda m: m.group(1).upper(), k) if "_" in k else k): _camel(v)
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def decode(signal: str, media: str, body: bytes) -> dict[str, Any]:
    """The request as its OTLP/JSON dict (400 when it cannot be read)."""
    if media == PROTOBUF:
        from google.protobuf import json_format
        from google.protobuf.message import DecodeError

        message = _request_type(signal)()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise PayloadError(400, f"not an OTLP protobuf {type(message).__name__}: "
                                    f"{exc}") from None
        return dict(json_format.MessageToDict(message))
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(400, f"not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise PayloadError(400, "an OTLP/JSON request must be a JSON object")
    envelope = _camel(envelope)
    key = _ENVELOPE[signal][0]
    if key in envelope and not isinstance(envelope[key], list):
        raise PayloadError(400, f"{key} must be a list")
    return envelope


def _request_type(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        return ExportTraceServiceRequest
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    return ExportLogsServiceRequest


@dataclass
class Split:
    """What one request holds: the items to spool and what was refused."""

    items: list[SpoolItem]
    rejects: list[SpoolReject]


def _reject(signal: str, where: str, field: str, reason: str, raw: Any) -> SpoolReject:
    return SpoolReject(signal, where, field, reason, json.dumps(raw, default=str)[:2000])


def split(signal: str, envelope: dict[str, Any]) -> Split:
    """One spool item per span (or log record), with its resource and scope."""
    resources_key, scopes_key, items_key = _ENVELOPE[signal]
    out = Split([], [])
    resources = envelope.get(resources_key) or []
    for ri, rs in enumerate(resources if isinstance(resources, list) else []):
        if not isinstance(rs, dict):
            out.rejects.append(_reject(signal, f"{resources_key}.{ri}", "(resource)",
                                       "not an object", rs))
            continue
        found = rs.get("resource")
        resource: dict[str, Any] = found if isinstance(found, dict) else {}
        scopes = rs.get(scopes_key) or []
        for si, ss in enumerate(scopes if isinstance(scopes, list) else []):
            if not isinstance(ss, dict):
                continue
            named = ss.get("scope")
            scope: dict[str, Any] = named if isinstance(named, dict) else {}
            raw_items = ss.get(items_key) or []
            for ii, raw in enumerate(raw_items if isinstance(raw_items, list) else []):
                where = f"{resources_key}.{ri}.{scopes_key}.{si}.{items_key}.{ii}"
                if signal == "traces":
                    item: SpoolItem | SpoolReject = _span_item(raw, resource, scope, where)
                else:
                    item = _log_item(raw, resource, scope, where)
                if isinstance(item, SpoolReject):
                    out.rejects.append(item)
                else:
                    out.items.append(item)
    return out


def _span_item(raw: Any, resource: dict[str, Any], scope: dict[str, Any],
               where: str) -> SpoolItem | SpoolReject:
    if not isinstance(raw, dict):
        return _reject("traces", where, "(span)", "a span must be an object", raw)
    trace_id = decode_id(raw.get("traceId"), 16)
    if trace_id is None:
        return _reject("traces", where, "traceId",
                       f"not a 16-byte id in hex or base64: {raw.get('traceId')!r}", raw)
    span_id = decode_id(raw.get("spanId"), 8)
    if span_id is None:
        return _reject("traces", where, "spanId",
                       f"not an 8-byte id in hex or base64: {raw.get('spanId')!r}", raw)
    parent = raw.get("parentSpanId") or None
    if parent and decode_id(parent, 8) is None:
        return _reject("traces", where, "parentSpanId",
                       f"not an 8-byte id in hex or base64: {parent!r}", raw)
    ended = str(raw.get("endTimeUnixNano") or "0") not in ("", "0")
    body = json.dumps({"resource": resource, "scope": scope, "span": raw},
                      separators=(",", ":"))
    return SpoolItem(trace_id, "span", span_id, body, ends_trace=not parent and ended)


def _log_item(raw: Any, resource: dict[str, Any], scope: dict[str, Any],
              where: str) -> SpoolItem | SpoolReject:
    if not isinstance(raw, dict):
        return _reject("logs", where, "(logRecord)", "a log record must be an object", raw)
    trace_id = decode_id(raw.get("traceId"), 16)
    span_id = decode_id(raw.get("spanId"), 8)
    if trace_id is None or span_id is None:
        field = "traceId" if trace_id is None else "spanId"
        return _reject("logs", where, field, "a log record needs the trace and span id of "
                       "the span it belongs to (only span events are kept)", raw)
    uid = attributes(raw.get("attributes")).get("log.record.uid")
    body = json.dumps({"resource": resource, "scope": scope, "log": raw},
                      separators=(",", ":"), sort_keys=True)
    key = f"uid:{uid}" if isinstance(uid, str) and uid else \
        hashlib.sha256(body.encode()).hexdigest()
    return SpoolItem(trace_id, "log", key, body)


# --- answers -----------------------------------------------------------------------------

def success(signal: str, media: str, rejected: int = 0, message: str = "") -> bytes:
    """The ``Export*ServiceResponse``: empty, or with ``partial_success``."""
    from google.protobuf import json_format

    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        answer: Any = ExportTraceServiceResponse()
        if rejected:
            answer.partial_success.rejected_spans = rejected
            answer.partial_success.error_message = message
    else:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        answer = ExportLogsServiceResponse()
        if rejected:
            answer.partial_success.rejected_log_records = rejected
            answer.partial_success.error_message = message
    if media == PROTOBUF:
        return bytes(answer.SerializeToString())
    return json_format.MessageToJson(answer, indent=None).encode()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# google.rpc.Code of each HTTP status the receiver answers with
_RPC_CODE = {400: 3, 401: 16, 404: 5, 405: 12, 413: 3, 415: 3, 429: 8, 500: 13, 503: 14}


def status(media: str | None, http_status: int, message: str) -> tuple[bytes, str]:
    """An error body, ``google.rpc.Status`` {code, message}, in the request's encoding
    (JSON when it had none we know); and its content type."""
    code = _RPC_CODE.get(http_status, 2)
    if media == PROTOBUF:
        text = message.encode("utf-8")
        # Status: field 1 (int32 code), field 2 (string message)
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, PROTOBUF
    return json.dumps({"code": code, "message": message}).encode(), JSON


def reject_message(rejects: list[SpoolReject], limit: int = 3) -> str:
    """One line naming the first refused items and why."""
    shown = "; ".join(f"{r.location}.{r.field}: {r.reason}" for r in rejects[:limit])
    more = f" (and {len(rejects) - limit} more)" if len(rejects) > limit else ""
    return f"{len(rejects)} refused: {shown}{more}"
