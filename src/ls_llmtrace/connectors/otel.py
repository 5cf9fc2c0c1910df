"""Reviewer and feedback records out as OpenTelemetry ``gen_ai.evaluation.result`` events.

Each live record becomes one OTLP log record with event name ``gen_ai.evaluation.result``
(the OpenTelemetry GenAI semantic conventions), sent as a protobuf
``ExportLogsServiceRequest`` over OTLP/HTTP (``POST {endpoint}/v1/logs``), so any
OpenTelemetry backend can show the verdict beside the trace:

- ``gen_ai.evaluation.name``: the schema (or, for feedback that came with the trace, its
  metric name); ``gen_ai.evaluation.score.label``: the label; ``gen_ai.evaluation.score.value``:
  the score; ``gen_ai.evaluation.explanation``: the explanation;
- the log record's ``trace_id`` and ``span_id``: the trace and the span judged (a span-scoped
  record's span, else the trace's root span), so the event is parented to the operation
  it evaluates, as the convention asks. MLflow's ``tr-<hex>`` ids are turned back into
  the OpenTelemetry trace id they carry; a trace id that is not a 16-byte id is sent as
  ``ls_llmtrace.trace_id`` only;
- ``log.record.uid``: a UUID derived from the record key and what is sent (the same
  content always gets the same uid, a changed record a new one) and
  ``ls_llmtrace.record_key``: a receiver dedupes re-sent events by the first and keeps the
  newest verdict per record by the second.

What was sent to an endpoint is hashed in the store, so a second push sends nothing;
``--all`` sends everything again (with the same uids).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from ls_llmtrace import __version__
from ls_llmtrace.connectors.common import PushSummary, content_hash, root_span_id
from ls_llmtrace.errors import ConnectorError
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.store import Store

SYSTEM = "otel"
EVENT = "gen_ai.evaluation.result"
SOURCES = (Source.reviewer, Source.end_user, Source.support, Source.qa)
BATCH = 500
SEVERITY_INFO = 9
_HEX = re.compile(r"[0-9a-f]+")
_HAS_EVENT_NAME = "event_name" in logs_pb2.LogRecord.DESCRIPTOR.fields_by_name


def otel_id(value: str | None, size: int) -> bytes | None:
    """The bytes of a trace (16) or span (8) id written in hex, also as ``tr-<hex>``."""
    if not value:
        return None
    text = value.lower().removeprefix("tr-")
    if len(text) != 2 * size or not _HEX.fullmatch(text) or set(text) == {"0"}:
        return None
    return bytes.fromhex(text)


def _nanos(when: datetime | None) -> int:
    return int(when.astimezone(UTC).timestamp() * 1_000_000_000) if when else 0


def event_attributes(record: AnnotationRecord) -> dict[str, Any]:
    """The event's attributes (plain values), in the GenAI names where there is one."""
    attrs: dict[str, Any] = {"gen_ai.evaluation.name": record.feedback_name
                             or record.schema_id}
    if record.label is not None:
        attrs["gen_ai.evaluation.score.label"] = record.label
    if record.score is not None:
        attrs["gen_ai.evaluation.score.value"] = float(record.score)
    if record.explanation:
        attrs["gen_ai.evaluation.explanation"] = record.explanation
    attrs.update({"ls_llmtrace.record_key": record.record_key,
                  "ls_llmtrace.trace_id": record.trace_id,
                  "ls_llmtrace.source": record.source.value,
                  "ls_llmtrace.schema": f"{record.schema_id}@v{record.schema_version}"})
    if record.labels:
        attrs["ls_llmtrace.categories"] = list(record.labels)
    if record.author:
        attrs["ls_llmtrace.author"] = record.author
    if record.corrected_output is not None:
        attrs["ls_llmtrace.corrected_output"] = record.corrected_output
    if record.ls_task_id is not None:
        attrs["ls_llmtrace.label_studio_task"] = record.ls_task_id
    return attrs


def _any(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(
            values=[_any(v) for v in value]))
    return common_pb2.AnyValue(string_value=str(value))


@dataclass(frozen=True)
class Event:
    """One evaluation event, ready to encode: ids, time, attributes, and its hash."""

    record_key: str
    trace_id: bytes | None
    span_id: bytes | None
    time_unix_nano: int
    attributes: dict[str, Any]
    digest: str

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ls-llmtrace:{self.record_key}:"
                                                  f"{self.digest}"))

    def log_record(self, observed: int) -> logs_pb2.LogRecord:
        attrs = {**self.attributes, "log.record.uid": self.uid}
        if not _HAS_EVENT_NAME:  # opentelemetry-proto older than the event_name field
            attrs["event.name"] = EVENT
        out = logs_pb2.LogRecord(
            time_unix_nano=self.time_unix_nano, observed_time_unix_nano=observed,
            severity_number=SEVERITY_INFO, severity_text="INFO",  # type: ignore[arg-type]
            attributes=[common_pb2.KeyValue(key=k, value=_any(v)) for k, v in attrs.items()])
        if _HAS_EVENT_NAME:
            out.event_name = EVENT
        if self.trace_id:
            out.trace_id = self.trace_id
            if self.span_id:
                out.span_id = self.span_id
        return out


def event_for(record: AnnotationRecord, trace: Trace | None) -> Event:
    trace_id = otel_id(record.trace_id, 16)
    if trace_id is None and trace is not None:
        trace_id = otel_id(str(trace.metadata.extra.get("otel_trace_id") or ""), 16)
    span = record.scope.span_id if record.scope.kind == "span" else (
        root_span_id(trace) if trace is not None else None)
    attrs = event_attributes(record)
    when = record.updated_at or record.created_at
    digest = content_hash({"attributes": attrs, "trace": trace_id.hex() if trace_id else None,
                           "span": span, "time": _nanos(when)})
    return Event(record.record_key, trace_id, otel_id(span, 8), _nanos(when), attrs, digest)


def events(store: Store, summary: PushSummary,
           sources: Iterable[Source] = SOURCES) -> Iterator[Event]:
    """The events of the live records of ``sources``."""
    traces: dict[str, Trace | None] = {}
    for source in sources:
        for record in store.records(source=source.value):
            if record.was_cancelled or record.deleted:
                summary.skip("skipped or deleted annotations")
                continue
            if record.trace_id not in traces:
                traces[record.trace_id] = store.trace(record.trace_id)
            yield event_for(record, traces[record.trace_id])


def export_request(batch: list[Event], observed: int | None = None
                   ) -> logs_service_pb2.ExportLogsServiceRequest:
    observed = observed if observed is not None else time.time_ns()
    resource = resource_pb2.Resource(attributes=[
        common_pb2.KeyValue(key="service.name", value=_any("ls-llmtrace"))])
    scope = common_pb2.InstrumentationScope(name="ls-llmtrace", version=__version__)
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource, scope_logs=[logs_pb2.ScopeLogs(
            scope=scope, log_records=[e.log_record(observed) for e in batch])])])


def logs_url(endpoint: str) -> str:
    """``endpoint`` as given when it names ``/v1/logs``, else with it appended (the
    OTLP/HTTP exporters' rule for a base endpoint)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/logs") else f"{endpoint}/v1/logs"


class OtlpLogSender:
    """``POST`` protobuf log exports, honouring 429/503 ``Retry-After`` a few times."""

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None,
                 timeout: float = 30.0, retries: int = 3) -> None:
        self.url = logs_url(endpoint)
        self.timeout = timeout
        self.retries = retries
        self.http = requests.Session()
        self.http.headers.update({"Content-Type": "application/x-protobuf", **(headers or {})})

    def send(self, request: logs_service_pb2.ExportLogsServiceRequest) -> int:
        """Send one export; the number of log records the receiver said it rejected."""
        body = request.SerializeToString()
        for attempt in range(self.retries + 1):
            try:
                response = self.http.post(self.url, data=body, timeout=self.timeout)
            except requests.RequestException as exc:
                raise ConnectorError(f"the OTLP endpoint {self.url} could not be reached "
                                     f"({type(exc).__name__}): is it running?") from None
            if response.status_code in (429, 502, 503, 504) and attempt < self.retries:
                time.sleep(_retry_after(response.headers.get("Retry-After"), attempt))
                continue
            if response.status_code >= 400:
                text = " ".join(response.text.split())[:300]
                raise ConnectorError(f"the OTLP endpoint {self.url} answered "
                                     f"{response.status_code}: {text}")
            answer = logs_service_pb2.ExportLogsServiceResponse()
            if response.content and "protobuf" in response.headers.get("Content-Type", ""):
                try:
                    answer.ParseFromString(response.content)
                except Exception:  # noqa: BLE001 - a receiver's odd answer is not our error
                    return 0
            return int(answer.partial_success.rejected_log_records)
        raise ConnectorError(f"the OTLP endpoint {self.url} stayed busy")  # pragma: no cover

    def close(self) -> None:
        self.http.close()


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return min(30.0, max(0.0, float(value))) if value else min(30.0, 2.0 ** attempt)
    except ValueError:
        return min(30.0, 2.0 ** attempt)


@dataclass
class OtelSummary(PushSummary):
    """A push's counts, plus the records the receiver said it rejected."""

    rejected: int = 0

    def line(self, tool: str) -> str:
        text = super().line(tool)
        return text + (f"; the receiver rejected {self.rejected}" if self.rejected else "")


def push(sender: OtlpLogSender, store: Store, resend: bool = False,
         sources: Iterable[Source] = SOURCES) -> OtelSummary:
    """Export the records as evaluation events; unchanged ones are skipped unless
    ``resend``. A batch the receiver partly rejected is still remembered (the receiver
    said why; sending it again would not help)."""
    summary = OtelSummary()
    scope = sender.url
    sent = store.pushed_items(SYSTEM, scope)
    pending: list[Event] = []

    def flush() -> None:
        if not pending:
            return
        summary.rejected += sender.send(export_request(pending))
        for event in pending:
            store.remember_push(SYSTEM, scope, event.record_key, event.uid, event.digest)
            summary.sent += 1
        pending.clear()

    for event in events(store, summary, sources):
        previous = sent.get(event.record_key)
        if not resend and previous is not None and previous.content_hash == event.digest:
            summary.unchanged += 1
            continue
        pending.append(event)
        if len(pending) >= BATCH:
            flush()
    flush()
    return summary
