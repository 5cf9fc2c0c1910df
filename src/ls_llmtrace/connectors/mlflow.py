"""MLflow 3 tracing, both ways, through the tracking server's REST API (plain HTTP).

**Pull**: the traces of an experiment whose request time is at or after the cursor are
searched (``POST /api/3.0/mlflow/traces/search``, oldest first, page tokens), fetched whole
with their spans (``GET /api/3.0/mlflow/traces/batchGet``, ten at a time) and read by the
OTLP importer. MLflow's span attributes (``mlflow.spanInputs``, ``mlflow.spanOutputs``,
``mlflow.spanType``, ``mlflow.llm.model``) are given their OpenInference names first, so the
importer reads the conversation as from any other instrumentation. The stored trace id is
MLflow's own (``tr-...``): the id engineers search for in MLflow and the one assessments
attach to. The cursor is the newest request time read, held before any trace still in
progress or one MLflow could not serve with its spans yet (kept aside with MLflow's
answer, read again by the next pull); the next pull starts ``overlap`` before it, and the
claims make a repeated pull change nothing. Spans must be in the tracking store (MLflow 3.6
and later with a database backend).

**Push**: each live reviewer record on a pulled trace becomes MLflow assessments with source
HUMAN and the reviewer's id: a *feedback* named after the schema (value: the label, else
the score, else the categories; rationale: the explanation; the rest in its metadata) and,
when the reviewer corrected the answer, an *expectation* ``expected_response``. Span-scoped
records carry the span id. The assessment ids and a hash of what was sent are kept in the
store: a second push of unchanged records sends nothing, a changed record is updated in
place (``PATCH``), and an assessment that was created but not remembered (a crash between
the two) is found again on the trace by its ``ls_llmtrace.item`` metadata, never duplicated.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.connectors.common import (
    PushSummary,
    camel_otlp,
    content_hash,
    pushable_records,
    record_metadata,
    traces_from_spans,
)
from ls_llmtrace.connectors.http import ToolRefused, ToolSession
from ls_llmtrace.errors import ConnectorError
from ls_llmtrace.models import AnnotationRecord, Rejected, Trace
from ls_llmtrace.store import Store
from ls_llmtrace.timeutil import to_utc

SYSTEM = "mlflow"
SEARCH_PAGE = 500  # the server's largest page
TRACES_PER_REQUEST = 10
EXPECTATION = "expected_response"  # the name MLflow's own scorers read
ITEM_KEY = "ls_llmtrace.item"
EXPERIMENT_KEY = "mlflow_experiment_id"

# MLflow span types -> OpenInference span kinds (what the OTLP importer reads)
_SPAN_KINDS = {"LLM": "LLM", "CHAT_MODEL": "LLM", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER",
               "RERANKER": "RERANKER", "AGENT": "AGENT", "CHAIN": "CHAIN",
               "EMBEDDING": "EMBEDDING", "PARSER": "CHAIN"}


class MlflowClient:
    """The MLflow tracking server routes the connector uses."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 basic: tuple[str, str] | None = None, timeout: float = 30.0) -> None:
        self.session = ToolSession("MLflow", url or settings.mlflow_url(),
                                   token or settings.mlflow_token(), timeout,
                                   basic or settings.mlflow_basic_auth())

    def experiment_id(self, experiment: str) -> str:
        """The id of the experiment named ``experiment`` (or with that id)."""
        found = self.session.call("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                  missing_ok=True, params={"experiment_name": experiment})
        if not found and experiment.isdigit():
            found = self.session.call("GET", "/api/2.0/mlflow/experiments/get",
                                      missing_ok=True, params={"experiment_id": experiment})
        if not found or not isinstance(found.get("experiment"), dict):
            raise ConnectorError(f"MLflow at {self.session.base_url} has no experiment "
                                 f"{experiment!r}")
        return str(found["experiment"]["experiment_id"])

    def search(self, experiment_id: str, filter_string: str = ""
               ) -> Iterator[dict[str, Any]]:
        """Every trace info of the experiment matching ``filter_string``, oldest first."""
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "locations": [{"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": experiment_id}}],
                "max_results": SEARCH_PAGE, "order_by": ["timestamp_ms ASC"]}
            if filter_string:
                body["filter"] = filter_string
            if token:
                body["page_token"] = token
            page = self.session.call("POST", "/api/3.0/mlflow/traces/search", json=body) or {}
            yield from page.get("traces") or []
            token = page.get("next_page_token")
            if not token:
                return

    def traces(self, trace_ids: list[str]) -> list[dict[str, Any]]:
        """The traces (``trace_info`` and ``spans``) of ``trace_ids``."""
        answer = self.session.call("GET", "/api/3.0/mlflow/traces/batchGet",
                                   params=[("trace_ids", t) for t in trace_ids]) or {}
        return list(answer.get("traces") or [])

    def trace_info(self, trace_id: str) -> dict[str, Any] | None:
        answer = self.session.call("GET", f"/api/3.0/mlflow/traces/{trace_id}",
                                   missing_ok=True) or {}
        trace = answer.get("trace") or {}
        info = trace.get("trace_info")
        return info if isinstance(info, dict) else None

    def assessments(self, trace_id: str) -> list[dict[str, Any]]:
        """The assessments MLflow holds on a trace (valid or not)."""
        info = self.trace_info(trace_id) or {}
        return list(info.get("assessments") or [])

    def create_assessment(self, trace_id: str, assessment: dict[str, Any]) -> str:
        answer = self.session.call("POST", f"/api/3.0/mlflow/traces/{trace_id}/assessments",
                                   json={"assessment": assessment}) or {}
        return str((answer.get("assessment") or {}).get("assessment_id"))

    def update_assessment(self, trace_id: str, assessment_id: str,
                          assessment: dict[str, Any]) -> bool:
        """Replace the value, rationale and metadata; False when MLflow no longer has it."""
        kind = "feedback" if "feedback" in assessment else "expectation"
        paths = [kind, "metadata", "assessment_name"]
        if kind == "feedback":
            paths.append("rationale")
        body = {"assessment": {**assessment, "assessment_id": assessment_id,
                               "trace_id": trace_id},
                "update_mask": ",".join(paths)}
        answer = self.session.call(
            "PATCH", f"/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}",
            missing_ok=True, json=body)
        return answer is not None

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        self.session.call("DELETE",
                          f"/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}",
                          missing_ok=True)

    def close(self) -> None:
        self.session.close()


# --- pull ---------------------------------------------------------------------------------

def _hex_id(value: Any, size: int) -> str | None:
    """Hex of an id MLflow serves as base64 bytes (or already in hex)."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 2 * size:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _attr(attrs: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    for item in attrs:
        if isinstance(item, dict) and item.get("key") == key:
            value = item.get("value")
            return value if isinstance(value, dict) else None
    return None


def _string(value: dict[str, Any] | None) -> str | None:
    text = (value or {}).get("stringValue")
    return text.strip('"') if isinstance(text, str) else None


def otlp_span(span: dict[str, Any]) -> dict[str, Any]:
    """One span of MLflow's trace proto as OTLP/JSON, MLflow's own attributes also given
    the OpenInference names the importer reads (the originals are kept)."""
    out = camel_otlp(span)
    attrs = [a for a in out.get("attributes") or [] if isinstance(a, dict)]
    extra: list[dict[str, Any]] = []
    names = {a.get("key") for a in attrs}
    for mlflow_key, oi_key in (("mlflow.spanInputs", "input.value"),
                               ("mlflow.spanOutputs", "output.value")):
        value = _attr(attrs, mlflow_key)
        if value is not None and oi_key not in names:
            extra.append({"key": oi_key, "value": value})
    kind = _SPAN_KINDS.get((_string(_attr(attrs, "mlflow.spanType")) or "").upper())
    if kind and "openinference.span.kind" not in names:
        extra.append({"key": "openinference.span.kind", "value": {"stringValue": kind}})
    model = _attr(attrs, "mlflow.llm.model")
    if model is not None and "llm.model_name" not in names:
        extra.append({"key": "llm.model_name", "value": model})
    out["attributes"] = attrs + extra
    if not out.get("parentSpanId"):
        out.pop("parentSpanId", None)
    return out


def _request_ms(info: dict[str, Any]) -> int | None:
    raw = info.get("request_time")
    if not isinstance(raw, str):
        return None
    try:
        when = to_utc(raw)
    except ValueError:
        return None
    return int(when.timestamp() * 1000) if when is not None else None


class MlflowPull:
    """One pull of an MLflow experiment: the traces, then the cursor to save."""

    def __init__(self, client: MlflowClient, store: Store, experiment: str,
                 since: datetime | None = None, filter_string: str = "",
                 overlap: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.experiment = experiment
        self.filter_string = filter_string
        saved = store.connector_cursor(SYSTEM, experiment)
        start = to_utc(since) if since is not None else None
        saved_at = to_utc(datetime.fromisoformat(saved)) if saved is not None else None
        if start is None and saved_at is not None:
            start = saved_at - overlap
        self.start: datetime | None = start
        self.newest_ms: int | None = None
        self.held_ms: int | None = None  # request time of the oldest trace still running
        self.trace_ids: list[str] = []
        self.requested: dict[str, int] = {}  # request time (ms) per trace read
        self.in_progress = 0

    def _filter(self) -> str:
        parts = []
        start = self.start
        if start is not None:
            parts.append(f"trace.timestamp_ms >= {int(start.timestamp() * 1000)}")
        if self.filter_string:  # MLflow's trace filters only have AND
            parts.append(self.filter_string)
        return " AND ".join(parts)

    def traces(self) -> Iterator[Trace | list[Rejected]]:
        """The finished traces with a request time since the cursor, each whole."""
        experiment_id = self.client.experiment_id(self.experiment)
        for info in self.client.search(experiment_id, self._filter()):
            self.take(info)
        for i in range(0, len(self.trace_ids), TRACES_PER_REQUEST):
            chunk = self.trace_ids[i:i + TRACES_PER_REQUEST]
            try:
                found = self._fetch(chunk)
            except ToolRefused:  # one trace MLflow cannot serve fails the whole request
                found = {}
                for trace_id in chunk:
                    try:
                        found.update(self._fetch([trace_id]))
                    except ToolRefused as exc:
                        self._hold(trace_id)
                        yield [Rejected(f"mlflow:{self.experiment}", f"trace {trace_id}",
                                        "spans", f"{exc} (tried again on the next pull)",
                                        trace_id)]
                        found[trace_id] = None
            for trace_id in chunk:
                if trace_id in found and found[trace_id] is None:
                    continue
                yield from self._read(trace_id, found.get(trace_id), experiment_id)

    def _fetch(self, trace_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        return {str((t.get("trace_info") or {}).get("trace_id")): t
                for t in self.client.traces(trace_ids)}

    def _hold(self, trace_id: str) -> None:
        """Keep the cursor before a trace MLflow could not serve yet (its spans may still
        be on their way), so the next pull reads it again."""
        when = self.requested.get(trace_id)
        if when is not None and (self.held_ms is None or when < self.held_ms):
            self.held_ms = when

    def take(self, info: dict[str, Any]) -> None:
        """Note one searched trace info: a finished trace to read, or one still running
        (left for a later pull, and the cursor held before it)."""
        when = _request_ms(info)
        if info.get("state") == "IN_PROGRESS":
            self.in_progress += 1
            if when is not None and (self.held_ms is None or when < self.held_ms):
                self.held_ms = when
            return
        if isinstance(info.get("trace_id"), str):
            self.trace_ids.append(info["trace_id"])
            if when is not None:
                self.requested[info["trace_id"]] = when
        if when is not None and (self.newest_ms is None or when > self.newest_ms):
            self.newest_ms = when

    def _read(self, trace_id: str, trace: dict[str, Any] | None, experiment_id: str
              ) -> Iterator[Trace | list[Rejected]]:
        spans = [otlp_span(s) for s in (trace or {}).get("spans") or [] if isinstance(s, dict)]
        if not spans:
            self._hold(trace_id)
            yield [Rejected(f"mlflow:{self.experiment}", f"trace {trace_id}", "spans",
                            "MLflow returned no spans for this trace (spans kept outside "
                            "the tracking store: an MLflow server older than 3.6, or a "
                            "file backend?)", trace_id)]
            return
        for item in traces_from_spans(spans, SYSTEM):
            if not isinstance(item, Trace):
                yield item
                continue
            extra = {**item.metadata.extra, EXPERIMENT_KEY: experiment_id,
                     "otel_trace_id": item.trace_id}
            feedback = [r.model_copy(update={"trace_id": trace_id}) for r in item.feedback]
            yield item.model_copy(update={
                "trace_id": trace_id, "feedback": feedback,
                "metadata": item.metadata.model_copy(update={"extra": extra})})

    def save_cursor(self, store: Store) -> str | None:
        """Remember the newest request time read, but never past a trace still running
        (call after the traces are imported)."""
        candidates = [m for m in (self.newest_ms, self.held_ms) if m is not None]
        if not candidates:
            return None
        ms = min(candidates) if self.held_ms is not None else max(candidates)
        cursor = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
        store.set_connector_cursor(SYSTEM, self.experiment, cursor)
        return cursor


# --- push ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    """One assessment to send: its key in the push state, and its body."""

    item_key: str
    trace_id: str
    body: dict[str, Any]


def _meta_strings(meta: dict[str, Any]) -> dict[str, str]:
    """MLflow's assessment metadata is a map of strings."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in meta.items()}


def assessments_for(record: AnnotationRecord, trace: Trace) -> list[Outgoing]:
    """The MLflow assessments of one reviewer record: a feedback (when it has a label, a
    score or categories) and an expectation (when it has a corrected output)."""
    source = {"source_type": "HUMAN", "source_id": record.author or "label-studio"}
    base: dict[str, Any] = {"trace_id": trace.trace_id, "source": source}
    if record.scope.kind == "span" and record.scope.span_id:
        base["span_id"] = record.scope.span_id
    meta = record_metadata(record)
    meta.pop("corrected_output", None)  # it is the expectation's value
    if record.score is not None:
        meta["score"] = record.score
    out: list[Outgoing] = []
    value: Any = (record.label if record.label is not None else record.score
                  if record.score is not None else list(record.labels) or None)
    if value is not None:
        key = record.record_key
        body = {**base, "assessment_name": record.schema_id, "feedback": {"value": value},
                "metadata": _meta_strings({**meta, ITEM_KEY: key})}
        if record.explanation:
            body["rationale"] = record.explanation
        out.append(Outgoing(key, trace.trace_id, body))
    if record.corrected_output is not None:
        key = f"{record.record_key}#{EXPECTATION}"
        body = {**base, "assessment_name": EXPECTATION,
                "expectation": {"value": record.corrected_output},
                "metadata": _meta_strings({**meta, ITEM_KEY: key})}
        out.append(Outgoing(key, trace.trace_id, body))
    return out


class _TraceGone(Exception):
    """The trace is no longer in MLflow (deleted there after the pull)."""


def _found_on_trace(client: MlflowClient, cache: dict[str, dict[str, str] | None],
                    trace_id: str, item_key: str) -> str | None:
    """The id of an assessment already on the trace for ``item_key`` (one created by a push
    that stopped before remembering it)."""
    if trace_id not in cache:
        info = client.trace_info(trace_id)
        cache[trace_id] = None if info is None else {
            str((a.get("metadata") or {}).get(ITEM_KEY)): str(a.get("assessment_id"))
            for a in info.get("assessments") or []
            if (a.get("metadata") or {}).get(ITEM_KEY)}
    found = cache[trace_id]
    if found is None:
        raise _TraceGone(trace_id)
    return found.get(item_key)


def _send(client: MlflowClient, on_trace: dict[str, dict[str, str] | None], item: Outgoing,
          remote: str | None) -> str:
    """Update the assessment (the remembered one, else one found on the trace) or create
    it; its id."""
    if remote is not None and client.update_assessment(item.trace_id, remote, item.body):
        return remote
    found = _found_on_trace(client, on_trace, item.trace_id, item.item_key)
    if found is not None and client.update_assessment(item.trace_id, found, item.body):
        return found
    return client.create_assessment(item.trace_id, item.body)


def push(client: MlflowClient, store: Store, experiment: str) -> PushSummary:
    """Send the reviewer records of traces pulled from ``experiment`` to MLflow as HUMAN
    assessments; unchanged ones are skipped, changed ones updated in place. The counts
    are of assessments (a record with a corrected output has two)."""
    summary = PushSummary()
    experiment_id = client.experiment_id(experiment)
    sent = store.pushed_items(SYSTEM, experiment_id)
    on_trace: dict[str, dict[str, str] | None] = {}
    for record, trace in pushable_records(store, SYSTEM, summary):
        if trace.metadata.extra.get(EXPERIMENT_KEY) != experiment_id:
            continue
        outgoing = assessments_for(record, trace)
        keys = {o.item_key for o in outgoing}
        stale = f"{record.record_key}#{EXPECTATION}"
        previous_expectation = sent.get(stale)
        if stale not in keys and previous_expectation is not None:
            if previous_expectation.remote_id:  # the correction was taken back
                client.delete_assessment(trace.trace_id, previous_expectation.remote_id)
            store.forget_push(SYSTEM, experiment_id, stale)
            summary.sent += 1
        if not outgoing:
            summary.skip("records with nothing to send")
            continue
        for item in outgoing:
            digest = content_hash(item.body)
            previous = sent.get(item.item_key)
            if previous is not None and previous.content_hash == digest:
                summary.unchanged += 1
                continue
            try:
                remote = _send(client, on_trace, item,
                               previous.remote_id if previous is not None else None)
            except _TraceGone:
                summary.skip("traces no longer in MLflow")
                continue
            except ToolRefused as exc:  # this assessment only: the others go on
                if exc.status >= 500:
                    raise
                summary.skip(f"refused by MLflow ({exc.status})")
                summary.errors.append(f"{item.item_key}: {exc}")
                continue
            store.remember_push(SYSTEM, experiment_id, item.item_key, remote, digest)
            summary.sent += 1
    return summary
