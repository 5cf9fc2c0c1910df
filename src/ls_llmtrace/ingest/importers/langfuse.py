"""Langfuse trace exports: ``{"trace": {...}, "observations": [...]}`` per record.

A file holds one export, a JSON array of them, or one per line. The conversation comes
from the GENERATION observations (the last one to end is the answer); TOOL observations
give tool results, RETRIEVER observations documents. Scores become feedback records:
``EVAL`` scores from evaluators, ``ANNOTATION`` scores and corrections from reviewers,
``API`` scores (what applications send, typically their users' thumbs) from end users.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ls_llmtrace.ingest.importers.common import (
    RECORD_ERRORS,
    as_text,
    feedback_record,
    is_bad,
    iter_json_records,
    jsonish,
    last_answer,
    number,
    split_system,
    to_messages,
    unreadable,
)
from ls_llmtrace.ingest.importers.spans import attach_tool_results
from ls_llmtrace.models import (
    AnnotationRecord,
    Document,
    Message,
    Rejected,
    Source,
    Span,
    SpanKind,
    ToolCall,
    Trace,
    TraceMetadata,
    rejects_from_validation,
)
from ls_llmtrace.timeutil import to_utc

_KINDS = {"GENERATION": SpanKind.llm, "TOOL": SpanKind.tool, "RETRIEVER": SpanKind.retrieval,
          "AGENT": SpanKind.agent, "CHAIN": SpanKind.chain, "EMBEDDING": SpanKind.llm}
_SCORE_SOURCES = {"EVAL": Source.evaluator, "ANNOTATION": Source.reviewer,
                  "API": Source.end_user}


def generation_messages(observation: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """(input, output) messages of one observation, read as Langfuse's chat view reads them."""
    return (to_messages(observation.get("input")),
            to_messages(observation.get("output"), "assistant"))


def is_langfuse_export(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("trace"), dict) \
        and "observations" in record


_EARLIEST = datetime.min.replace(tzinfo=UTC)  # what an observation without times sorts as


def _when(value: Any) -> datetime | None:
    try:
        return to_utc(value) if value else None
    except (TypeError, ValueError):
        return None


def _documents(output: Any) -> list[Document]:
    value = jsonish(output)
    if isinstance(value, dict):
        value = value.get("documents", value.get("results", [value]))
    docs = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            content = item.get("page_content", item.get("content", item.get("text")))
            meta = item.get("metadata")
            docs.append(Document(id=str(item["id"]) if item.get("id") is not None else None,
                                 content=as_text(content if content is not None else item),
                                 score=number(item.get("score")),
                                 metadata=meta if isinstance(meta, dict) else {}))
        elif isinstance(item, str):
            docs.append(Document(content=item))
    return docs


def _scores(trace_id: str, items: Any) -> list[AnnotationRecord]:
    out = []
    for score in items or []:
        if not isinstance(score, dict) or not score.get("id"):
            continue
        data_type = str(score.get("dataType") or "")
        source = _SCORE_SOURCES.get(str(score.get("source") or ""), Source.evaluator)
        text_value = score.get("longStringValue") or score.get("stringValue")
        meta = jsonish(score.get("metadata"))
        common: dict[str, Any] = {
            "key": f"langfuse:{score['id']}", "trace_id": trace_id, "source": source,
            "name": score.get("name"), "explanation": score.get("comment"),
            "author": score.get("authorUserId"), "span_id": score.get("observationId"),
            "created_at": score.get("timestamp") or score.get("createdAt"),
            "metadata": {"data_type": data_type, "langfuse_source": score.get("source"),
                         **({"langfuse_metadata": meta} if meta else {})},
        }
        if data_type == "CORRECTION":
            out.append(feedback_record(corrected_output=str(text_value or ""), **common))
        elif data_type in ("CATEGORICAL", "TEXT"):
            out.append(feedback_record(label=str(text_value) if text_value else None,
                                       value=None if text_value else score.get("value"),
                                       **common))
        elif data_type == "BOOLEAN":
            out.append(feedback_record(value=bool(number(score.get("value"))), **common))
        else:
            out.append(feedback_record(value=score.get("value"), **common))
    return out


def langfuse_trace(export: dict[str, Any]) -> Trace:
    """One Langfuse export as a Trace (raises ValidationError on unusable values)."""
    raw = export["trace"]
    trace_id = str(raw.get("id") or "")
    observations = [o for o in export.get("observations") or [] if isinstance(o, dict)]
    # each timestamp is read once: the sort reads the ends (a start where there is none),
    # the spans below the starts
    ends: dict[int, datetime | None] = {}
    starts: dict[int, datetime | None] = {}

    def order(o: dict[str, Any]) -> datetime:
        end = ends[id(o)] = _when(o.get("endTime"))
        if end:
            return end
        start = starts[id(o)] = _when(o.get("startTime"))
        return start or _EARLIEST

    observations.sort(key=order)
    generations = [o for o in observations if o.get("type") == "GENERATION"]
    spans: list[Span] = []
    documents: list[Document] = []
    tool_results: list[ToolCall] = []
    input_tokens = output_tokens = 0
    have_tokens = False
    cost = 0.0
    have_cost = False
    errors: list[str] = []
    for obs in observations:
        kind = _KINDS.get(str(obs.get("type")), SpanKind.other)
        error = None
        if obs.get("level") == "ERROR":
            error = str(obs.get("statusMessage") or "error")
            errors.append(error)
        spans.append(Span(
            span_id=str(obs.get("id")), parent_span_id=obs.get("parentObservationId"),
            name=str(obs.get("name") or ""), kind=kind,
            start_time=starts[id(obs)] if id(obs) in starts else _when(obs.get("startTime")),
            end_time=ends[id(obs)], error=error,  # every end was read by the sort
            attributes={k: obs[k] for k in ("type", "model", "promptName", "promptVersion")
                        if obs.get(k) is not None}))
        if kind == SpanKind.retrieval:
            documents.extend(_documents(obs.get("output")))
        if kind == SpanKind.tool:
            tool_results.append(ToolCall(name=str(obs.get("name") or "tool"),
                                         arguments=jsonish(obs.get("input")),
                                         result=jsonish(obs.get("output"))))
        usage = obs.get("usageDetails") or {}
        tin = number(usage.get("input", obs.get("inputUsage")))
        tout = number(usage.get("output", obs.get("outputUsage")))
        if obs.get("type") == "GENERATION" and (tin is not None or tout is not None):
            have_tokens = True
            input_tokens += int(tin or 0)
            output_tokens += int(tout or 0)
        total_cost = number((obs.get("costDetails") or {}).get("total", obs.get("totalCost")))
        if total_cost is not None and total_cost >= 0:
            have_cost, cost = True, cost + total_cost
    system_prompt, output = "", ""
    messages: list[Message] = []
    main: dict[str, Any] = {}
    if generations:
        main = generations[-1]
        inputs, outputs = generation_messages(main)
        system_prompt, messages = split_system(inputs)
        output = last_answer(outputs)
        if not output and outputs:
            messages = [*messages, *(o for o in outputs if o.content or o.tool_calls)]
    if not output:
        output = as_text(jsonish(raw.get("output")))
        if output == "None":  # what some SDKs send for "no output"
            output = ""
    if not messages and not generations:
        messages = to_messages(raw.get("input"))
    messages = attach_tool_results(messages, tool_results)
    latency = number(raw.get("latency"))
    params = main.get("modelParameters") if isinstance(main.get("modelParameters"), dict) else {}
    trace_meta = jsonish(raw.get("metadata"))
    trace_meta = trace_meta if isinstance(trace_meta, dict) else {}
    metadata = TraceMetadata(
        model=(params or {}).get("model") or main.get("model"),
        model_version=main.get("model"),
        prompt_name=main.get("promptName"),
        prompt_version=str(main["promptVersion"]) if main.get("promptVersion") is not None
        else None,
        product_area=_str(trace_meta.get("product_area")),
        user_segment=_str(trace_meta.get("user_segment")),
        environment=raw.get("environment"),
        latency_ms=latency * 1000.0 if latency is not None and latency >= 0 else None,
        input_tokens=input_tokens if have_tokens else None,
        output_tokens=output_tokens if have_tokens else None,
        cost_usd=cost if have_cost else None,
        error=errors[0] if errors else None,
        start_time=_when(raw.get("timestamp")),
        extra={k: v for k, v in {
            "name": raw.get("name"), "tags": raw.get("tags") or None,
            "release": raw.get("release"), "version": raw.get("version"),
            "user id": raw.get("userId"), "session id": raw.get("sessionId"),
        }.items() if v not in (None, "", [])},
    )
    feedback = _scores(trace_id, raw.get("scores")) + _scores(trace_id, raw.get("corrections"))
    return Trace(trace_id=trace_id, system_prompt=system_prompt, messages=messages,
                 documents=documents, output=output, spans=spans, metadata=metadata,
                 source="langfuse", feedback=feedback)


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def read_langfuse(path: str | Path) -> Iterator[Trace | list[Rejected]]:
    path = Path(path)
    for location, record in iter_json_records(path):
        if is_bad(record):
            yield [Rejected(str(path), location, "(record)", str(record),
                            getattr(record, "raw", ""))]
            continue
        if not is_langfuse_export(record):
            yield [Rejected(str(path), location, "trace",
                            'not a Langfuse export: expected {"trace": {...}, '
                            '"observations": [...]}', str(record)[:2000])]
            continue
        if not record["trace"].get("id"):
            yield [Rejected(str(path), location, "trace.id", "missing: every trace needs its id",
                            str(record)[:2000])]
            continue
        try:
            yield langfuse_trace(record)
        except ValidationError as exc:
            yield rejects_from_validation(exc, str(path), location, str(record)[:2000])
        except RECORD_ERRORS as exc:
            yield [unreadable(str(path), location, exc, record)]
