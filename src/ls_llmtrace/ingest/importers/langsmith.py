"""LangSmith runs: run exports (JSON array or JSON Lines of runs) and upload files.

Upload files hold ``{"post": [run creates], "patch": [run updates]}``: a run's patch is
merged into its create. Runs are grouped into trees by ``trace_id`` (the root run's id)
and ordered by ``dotted_order``. In a run stream, a trace is emitted once its root run has
ended; at most ``max_pending`` trees wait at once (memory stays flat). Feedback in a
run's ``feedback`` list (or a separate feedback record with ``run_id`` and ``key``)
becomes records; ``feedback_stats`` (aggregates only) is kept in the metadata.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
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
from ls_llmtrace.ingest.importers.dialects import system_text
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

_KINDS = {"llm": SpanKind.llm, "tool": SpanKind.tool, "retriever": SpanKind.retrieval,
          "chain": SpanKind.chain, "prompt": SpanKind.other, "parser": SpanKind.other,
          "embedding": SpanKind.llm}
# feedback_source.type -> our source
_FEEDBACK_SOURCES = {"api": Source.end_user, "app": Source.reviewer, "model": Source.evaluator,
                     "auto_eval": Source.evaluator}


def is_langsmith_record(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    if isinstance(record.get("post"), list) or isinstance(record.get("patch"), list):
        return True
    return "run_type" in record or ("dotted_order" in record and "inputs" in record) \
        or _is_feedback(record)


def _is_feedback(record: dict[str, Any]) -> bool:
    return "run_id" in record and "key" in record and "run_type" not in record


def merge_runs(posts: list[dict[str, Any]], patches: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Creates with their updates merged in, by run id (later keys win, empty values don't)."""
    runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for run in posts:
        runs[str(run.get("id"))] = dict(run)
    for patch in patches:
        key = str(patch.get("id"))
        base = runs.setdefault(key, {})
        for field, value in patch.items():
            if value not in (None, {}, []) or field not in base:
                base[field] = value
    return list(runs.values())


# where a call's keyword arguments keep the system prompt beside the messages:
# Anthropic's ``system``, the OpenAI Responses API's ``instructions``, Gemini's config
_SYSTEM_KEYS = ("system", "instructions", "system_instruction", "system_prompt")


def _inputs_messages(run: dict[str, Any]) -> list[Message]:
    inputs = jsonish(run.get("inputs")) or {}
    if isinstance(inputs, dict):
        for key in ("messages", "prompts", "input", "question", "query", "prompt"):
            if key in inputs:
                value = inputs[key]
                if key == "prompts" and isinstance(value, list):
                    # a LangChain LLM run: each prompt is text, a chat rendered as
                    # "System: ...\nHuman: ..." read back into its turns
                    return [m for p in value for m in (
                        to_messages(p) if isinstance(p, str) and p
                        else [Message(role="user", content=as_text(p))])]
                return _with_system(inputs, to_messages(value))
    return to_messages(inputs)


def _with_system(inputs: dict[str, Any], messages: list[Message]) -> list[Message]:
    """The messages with the system prompt the inputs give beside them first (unless the
    messages already open with one)."""
    config = inputs.get("config")
    sources = [inputs.get(key) for key in _SYSTEM_KEYS]
    if isinstance(config, dict):
        sources.append(config.get("system_instruction"))
    system = next((system_text(s) for s in sources if s), "")
    if not system or (messages and messages[0].role in ("system", "developer")):
        return messages
    return [Message(role="system", content=system), *messages]


def _output_messages(run: dict[str, Any]) -> list[Message]:
    outputs = jsonish(run.get("outputs")) or {}
    if isinstance(outputs, dict):
        if "generations" in outputs:  # LangChain LLMResult
            gens = outputs["generations"]
            flat = [g for row in gens for g in (row if isinstance(row, list) else [row])]
            return [m for g in flat if isinstance(g, dict)
                    for m in (to_messages(g.get("message"), "assistant")
                              or [Message(role="assistant", content=as_text(g.get("text")))])]
        for key in ("choices", "messages"):
            if key in outputs:
                return to_messages(outputs if key == "choices" else outputs[key], "assistant")
        if outputs.get("role") or outputs.get("type") in ("ai", "AIMessage"):
            return to_messages(outputs, "assistant")  # one message (an Anthropic response)
        for key in ("output", "answer", "text", "content"):
            if key in outputs:
                return to_messages(outputs[key], "assistant")
    return []


def _usage(run: dict[str, Any]) -> tuple[int | None, int | None]:
    tin, tout = number(run.get("prompt_tokens")), number(run.get("completion_tokens"))
    if tin is None and tout is None:
        outputs: dict[str, Any] = run["outputs"] if isinstance(run.get("outputs"), dict) else {}
        usage = outputs.get("usage_metadata") or outputs.get("usage") or {}
        if isinstance(usage, dict):
            tin = number(usage.get("input_tokens", usage.get("prompt_tokens")))
            tout = number(usage.get("output_tokens", usage.get("completion_tokens")))
    return (int(tin) if tin is not None else None, int(tout) if tout is not None else None)


def _feedback(trace_id: str, items: Any) -> list[AnnotationRecord]:
    out = []
    for fb in items or []:
        if not isinstance(fb, dict) or not fb.get("id"):
            continue
        fsource = fb.get("feedback_source") or {}
        source = _FEEDBACK_SOURCES.get(str(fsource.get("type") or "api"), Source.end_user)
        correction = fb.get("correction")
        value = fb.get("score") if fb.get("score") is not None else fb.get("value")
        out.append(feedback_record(
            key=f"langsmith:{fb['id']}", trace_id=trace_id, source=source, name=fb.get("key"),
            value=value, explanation=fb.get("comment"),
            corrected_output=as_text(correction) if correction is not None else None,
            author=fsource.get("user_id") if isinstance(fsource, dict) else None,
            span_id=str(fb["run_id"]) if fb.get("run_id") and str(fb["run_id"]) != trace_id
            else None,
            created_at=fb.get("created_at"),
            metadata={"feedback_source": fsource.get("type")} if fsource else {}))
    return out


def _when(value: Any) -> Any:
    try:
        return to_utc(value) if value else None
    except (TypeError, ValueError):
        return None


def build_run_tree(trace_id: str, runs: list[dict[str, Any]],
                   feedback: list[dict[str, Any]] | None = None) -> Trace:
    runs = sorted(runs, key=lambda r: str(r.get("dotted_order") or r.get("start_time") or ""))
    ids = {str(r.get("id")) for r in runs}
    root = next((r for r in runs if not r.get("parent_run_id")
                 or str(r.get("parent_run_id")) not in ids), runs[0])
    spans, documents, tool_results = [], [], []
    llm_runs = []
    tin_total = tout_total = 0
    have_tokens = False
    records: list[AnnotationRecord] = []
    errors = []
    for run in runs:
        kind = _KINDS.get(str(run.get("run_type")), SpanKind.other)
        if run.get("error"):
            errors.append(str(run["error"]))
        spans.append(Span(span_id=str(run.get("id")), parent_span_id=_str(run.get("parent_run_id")),
                          name=str(run.get("name") or ""), kind=kind,
                          start_time=_when(run.get("start_time")),
                          end_time=_when(run.get("end_time")), error=_str(run.get("error")),
                          attributes={"run_type": run.get("run_type")}))
        if kind == SpanKind.llm:
            llm_runs.append(run)
            tin, tout = _usage(run)
            if tin is not None or tout is not None:
                have_tokens = True
                tin_total += tin or 0
                tout_total += tout or 0
        elif kind == SpanKind.retrieval:
            outputs = jsonish(run.get("outputs")) or {}
            docs = outputs.get("documents", []) if isinstance(outputs, dict) else outputs
            for d in docs if isinstance(docs, list) else []:
                if isinstance(d, dict):
                    meta = d.get("metadata")
                    documents.append(Document(
                        id=_str(d.get("id")), content=as_text(d.get("page_content",
                                                                     d.get("content"))),
                        metadata=meta if isinstance(meta, dict) else {}))
        elif kind == SpanKind.tool:
            outputs = jsonish(run.get("outputs"))
            result = outputs.get("output", outputs) if isinstance(outputs, dict) else outputs
            inputs = jsonish(run.get("inputs"))
            tool_results.append(ToolCall(name=str(run.get("name") or "tool"), arguments=inputs,
                                         result=result))
        records.extend(_feedback(trace_id, run.get("feedback")))
    records.extend(_feedback(trace_id, feedback))
    system_prompt, output = "", ""
    messages: list[Message] = []
    main = llm_runs[-1] if llm_runs else root
    inputs = _inputs_messages(main)
    outputs = _output_messages(main)
    system_prompt, messages = split_system(inputs)
    output = last_answer(outputs)
    if not output and outputs:
        messages = [*messages, *(o for o in outputs if o.content or o.tool_calls)]
    if not output and main is not root:
        output = last_answer(_output_messages(root))
    messages = attach_tool_results(messages, tool_results)
    meta = ((main.get("extra") or {}).get("metadata") or {}) if isinstance(main.get("extra"),
                                                                          dict) else {}
    root_meta = ((root.get("extra") or {}).get("metadata") or {}) \
        if isinstance(root.get("extra"), dict) else {}
    main_inputs = jsonish(main.get("inputs"))
    main_inputs = main_inputs if isinstance(main_inputs, dict) else {}
    outputs_raw = main.get("outputs") if isinstance(main.get("outputs"), dict) else {}
    start, end = _when(root.get("start_time")), _when(root.get("end_time"))
    latency = (end - start).total_seconds() * 1000.0 if start and end and end >= start else None
    stats = root.get("feedback_stats")
    metadata = TraceMetadata(
        model=_str(meta.get("ls_model_name") or main_inputs.get("model")),
        model_version=_str(outputs_raw.get("model")) if outputs_raw else None,
        prompt_name=_str(root_meta.get("prompt_name")),
        prompt_version=_str(root_meta.get("prompt_version")),
        product_area=_str(root_meta.get("product_area")),
        user_segment=_str(root_meta.get("user_segment")),
        environment=_str(root_meta.get("environment") or root_meta.get("LANGSMITH_ENVIRONMENT")),
        latency_ms=latency,
        input_tokens=tin_total if have_tokens else None,
        output_tokens=tout_total if have_tokens else None,
        cost_usd=number(root.get("total_cost")),
        error=_str(root.get("error")) or (errors[0] if errors else None),
        start_time=start, end_time=end,
        extra={k: v for k, v in {
            "name": root.get("name"), "provider": meta.get("ls_provider"),
            "session": root.get("session_name") or root.get("session_id"),
            "tags": root.get("tags") or None, "feedback stats": stats or None,
            "revision": root_meta.get("revision_id"),
        }.items() if v not in (None, "", [])},
    )
    return Trace(trace_id=trace_id, system_prompt=system_prompt, messages=messages,
                 documents=documents, output=output, spans=spans, metadata=metadata,
                 source="langsmith", feedback=records)


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def read_langsmith(path: str | Path, max_pending: int = 10000
                   ) -> Iterator[Trace | list[Rejected]]:
    path = Path(path)
    file = str(path)
    pending: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    feedback: dict[str, list[dict[str, Any]]] = {}
    where: dict[str, str] = {}

    def emit(trace_id: str, runs: list[dict[str, Any]]) -> Iterator[Trace | list[Rejected]]:
        try:
            yield build_run_tree(trace_id, runs, feedback.pop(trace_id, None))
        except ValidationError as exc:
            yield rejects_from_validation(exc, file, where.pop(trace_id, "record"),
                                          str(runs)[:2000])
        except RECORD_ERRORS as exc:
            yield [unreadable(file, where.pop(trace_id, "record"), exc, runs)]

    for location, record in iter_json_records(path):
        if is_bad(record):
            yield [Rejected(file, location, "(record)", str(record), getattr(record, "raw", ""))]
            continue
        if not is_langsmith_record(record):
            yield [Rejected(file, location, "(record)", "not a LangSmith run, upload file "
                            "({post, patch}) or feedback record", str(record)[:2000])]
            continue
        if _is_feedback(record):
            key = str(record.get("trace_id") or record.get("run_id"))
            feedback.setdefault(key, []).append(record)
            continue
        if "post" in record or "patch" in record:
            runs = merge_runs([r for r in record.get("post") or [] if isinstance(r, dict)],
                              [r for r in record.get("patch") or [] if isinstance(r, dict)])
            complete = True
        else:
            runs = [record]
            complete = False
        for index, run in enumerate(runs):
            trace_id = run.get("trace_id") or (run.get("id") if not run.get("parent_run_id")
                                               else None)
            if not trace_id:
                yield [Rejected(file, location, f"runs.{index}.trace_id",
                                "missing: a run needs its trace_id (the root run's id)",
                                str(run)[:2000])]
                continue
            pending.setdefault(str(trace_id), []).append(run)
            where.setdefault(str(trace_id), location)
        if complete:
            for trace_id in list(pending):
                yield from emit(trace_id, pending.pop(trace_id))
            continue
        run = runs[0]
        trace_id = str(run.get("trace_id") or run.get("id"))
        if not run.get("parent_run_id") and run.get("end_time"):
            yield from emit(trace_id, pending.pop(trace_id, []))
        while len(pending) > max_pending:
            trace_id, runs = pending.popitem(last=False)
            yield from emit(trace_id, runs)
    for trace_id, runs in list(pending.items()):
        yield from emit(trace_id, runs)
    for trace_id, items in feedback.items():
        yield [Rejected(file, "end of file", "run_id", f"feedback for trace {trace_id} whose "
                        "runs were not in this file (or came before it): put feedback after "
                        "the runs of its trace", str(items)[:2000])]
