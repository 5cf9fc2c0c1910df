"""Arize Phoenix, both ways, through its REST API (``/v1``).

**Pull**: the spans of a Phoenix project that started since the cursor are listed
(``GET /v1/projects/{project}/spans/otlpv1``, newest first, cursor pages), their traces
are fetched whole (the same route filtered by ``trace_id``), and the OTLP importer
assembles them; the import road (claims) makes a repeated pull change nothing. The cursor
is the newest span start seen; the next pull starts ``overlap`` before it, so spans
written late (a trace still running) are not missed.

**Push**: each live reviewer record on a pulled trace becomes one Phoenix annotation with
``annotator_kind`` HUMAN: a span annotation on the record's span (span-scoped records) or
on the trace's root span, named after the schema, with label, score, explanation and the
record's categories, corrected output and reviewer in its metadata. Its ``identifier`` is
the record key, which Phoenix upserts on, and what was sent is remembered in the store: a
second push of unchanged records sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.connectors.common import (
    PushSummary,
    camel_otlp,
    content_hash,
    pushable_records,
    record_metadata,
    root_span_id,
    traces_from_spans,
)
from ls_llmtrace.connectors.http import ToolSession
from ls_llmtrace.ingest.importers.spans import nanos_to_datetime
from ls_llmtrace.models import AnnotationRecord, Rejected, Trace
from ls_llmtrace.store import Store
from ls_llmtrace.timeutil import to_utc

SYSTEM = "phoenix"
PAGE = 1000
TRACES_PER_REQUEST = 20


class PhoenixClient:
    """The Phoenix routes the connector uses."""

    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0) -> None:
        self.session = ToolSession("Phoenix", url or settings.phoenix_url(),
                                   api_key or settings.phoenix_api_key(), timeout)

    def spans(self, project: str, *, start_time: datetime | None = None,
              trace_ids: list[str] | None = None,
              attributes: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Every span of ``project`` matching the filters, in OTLP/JSON (camelCase)."""
        cursor: str | None = None
        while True:
            params: list[tuple[str, str]] = [("limit", str(PAGE))]
            if cursor:
                params.append(("cursor", cursor))
            if start_time is not None:
                params.append(("start_time", start_time.isoformat()))
            params += [("trace_id", t) for t in trace_ids or []]
            params += [("attribute", a) for a in attributes]
            page = self.session.call("GET", f"/v1/projects/{project}/spans/otlpv1",
                                     params=params) or {}
            for span in page.get("data") or []:
                yield camel_otlp(span)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def annotate_spans(self, annotations: list[dict[str, Any]]) -> list[str]:
        """Create or update (by name, span and identifier) span annotations; their ids."""
        answer = self.session.call("POST", "/v1/span_annotations", params={"sync": "true"},
                                   json={"data": annotations}) or {}
        return [str(item.get("id")) for item in answer.get("data") or []]

    def span_annotations(self, project: str, span_ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: list[tuple[str, str]] = [("limit", "1000")]
            params += [("span_ids", s) for s in span_ids]
            if cursor:
                params.append(("cursor", cursor))
            page = self.session.call("GET", f"/v1/projects/{project}/span_annotations",
                                     params=params) or {}
            out += page.get("data") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def close(self) -> None:
        self.session.close()


def _start(span: dict[str, Any]) -> int:
    try:
        return int(span.get("startTimeUnixNano") or 0)
    except (TypeError, ValueError):
        return 0


class PhoenixPull:
    """One pull of a Phoenix project: the traces, then the cursor to save."""

    def __init__(self, client: PhoenixClient, store: Store, project: str,
                 since: datetime | None = None, attributes: tuple[str, ...] = (),
                 overlap: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.project = project
        self.attributes = attributes
        saved = store.connector_cursor(SYSTEM, project)
        start = since
        saved_at = to_utc(saved) if saved is not None else None
        if start is None and saved_at is not None:
            start = saved_at - overlap
        self.start = start
        self.newest: int | None = None
        self.trace_ids: list[str] = []

    def traces(self) -> Iterator[Trace | list[Rejected]]:
        """The traces with a span started since the cursor, each whole."""
        seen: dict[str, None] = {}
        for span in self.client.spans(self.project, start_time=self.start,
                                      attributes=self.attributes):
            trace_id = span.get("traceId")
            if isinstance(trace_id, str):
                seen.setdefault(trace_id, None)
            started = _start(span)
            if started and (self.newest is None or started > self.newest):
                self.newest = started
        self.trace_ids = list(seen)
        for i in range(0, len(self.trace_ids), TRACES_PER_REQUEST):
            chunk = self.trace_ids[i:i + TRACES_PER_REQUEST]
            spans = list(self.client.spans(self.project, trace_ids=chunk))
            yield from traces_from_spans(spans, SYSTEM)

    def save_cursor(self, store: Store) -> str | None:
        """Remember the newest span start seen (call after the traces are imported)."""
        if self.newest is None:
            return None
        newest = nanos_to_datetime(self.newest)
        if newest is None:
            return None
        store.set_connector_cursor(SYSTEM, self.project, newest.isoformat())
        return newest.isoformat()


def annotation_for(record: AnnotationRecord, trace: Trace) -> dict[str, Any] | None:
    """The Phoenix span annotation of one reviewer record (None: no span to put it on)."""
    span_id = record.scope.span_id if record.scope.kind == "span" else root_span_id(trace)
    if not span_id:
        return None
    result = {"label": record.label, "score": record.score,
              "explanation": record.explanation}
    return {"span_id": span_id, "name": record.schema_id, "annotator_kind": "HUMAN",
            "result": {k: v for k, v in result.items() if v is not None},
            "metadata": record_metadata(record),
            "identifier": f"ls-llmtrace:{record.record_key}"}


def push(client: PhoenixClient, store: Store, project: str) -> PushSummary:
    """Send the reviewer records of pulled traces to Phoenix; unchanged ones are skipped."""
    summary = PushSummary()
    sent = store.pushed_items(SYSTEM, project)
    batch: list[tuple[str, dict[str, Any], str]] = []
    for record, trace in pushable_records(store, SYSTEM, summary):
        annotation = annotation_for(record, trace)
        if annotation is None:
            summary.skip("traces without spans")
            continue
        digest = content_hash(annotation)
        previous = sent.get(record.record_key)
        if previous is not None and previous.content_hash == digest:
            summary.unchanged += 1
            continue
        batch.append((record.record_key, annotation, digest))
    for i in range(0, len(batch), 100):
        chunk = batch[i:i + 100]
        ids = client.annotate_spans([annotation for _, annotation, _ in chunk])
        for j, (key, _, digest) in enumerate(chunk):
            store.remember_push(SYSTEM, project, key, ids[j] if j < len(ids) else None,
                                digest)
            summary.sent += 1
    return summary
