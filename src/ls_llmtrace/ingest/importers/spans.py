"""Spans with attributes in the OpenTelemetry GenAI or OpenInference conventions -> Trace.

Shared by the OTLP/JSON importer and the flat attribute-map reader. A span is read into
:class:`SpanView` (pure data); :func:`build_trace` groups a trace's spans into one
:class:`~ls_llmtrace.models.Trace`: the conversation from the last LLM span, tool calls
with their results from tool spans, retrieved documents, latency from the root span,
errors from span status, and evaluations already on the spans as feedback records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from ls_llmtrace.ingest.importers.common import (
    answer_text,
    as_text,
    feedback_record,
    jsonish,
    last_answer,
    number,
    split_system,
    to_messages,
)
from ls_llmtrace.ingest.importers.dialects import Reading, reading
from ls_llmtrace.models import (
    AnnotationRecord,
    Message,
    Source,
    SpanKind,
    ToolCall,
    Trace,
)


@dataclass
class SpanView:
    """One span, format-independent: flat attributes and events."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str = ""
    start: datetime | None = None
    end: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # {name, time, attributes}
    error: str | None = None
    resource: dict[str, Any] = field(default_factory=dict)


# what a span without a time sorts as (built once: sort keys are computed per span)
_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def nanos_to_datetime(value: Any) -> datetime | None:
    try:
        if type(value) is str and value.isascii() and value.isdigit():  # OTLP/JSON's usual
            nanos = int(value)  # int / float rounds as float(value) would: the same instant
            return datetime.fromtimestamp(nanos / 1e9, tz=UTC) if nanos > 0 else None
        n = number(value)
        if n is None or n <= 0:
            return None
        return datetime.fromtimestamp(int(n) / 1e9, tz=UTC)
    except OSError as exc:  # past the platform's time_t: out of range, as a later year is
        raise ValueError(f"timestamp out of range: {value!r}") from exc


def unflatten(attrs: dict[str, Any], prefix: str) -> Any:
    """OpenInference's flattened lists (``a.0.b.1.c``) back into nested lists and dicts."""
    root: dict[str, Any] = {}
    size = len(prefix)
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        node = root
        *path, leaf = key[size:].split(".")
        for part in path:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts whose keys are all numbers as lists in number order, at every depth."""
    if not isinstance(node, dict):
        return node
    items = {k: _lists(v) if isinstance(v, dict) else v for k, v in node.items()}
    # one isdigit over the joined keys tests every key at C speed (an empty key, which the
    # join would hide, is not a number)
    if items and "" not in items and "".join(items).isdigit():
        return [items[k] for k in sorted(items, key=int)]
    return items


def _oi_messages(attrs: dict[str, Any], prefix: str, default_role: str) -> list[Message]:
    entries = unflatten(attrs, prefix)
    if not isinstance(entries, list):
        return []
    raw = []
    for entry in entries:
        message = entry.get("message") if isinstance(entry, dict) else None
        if not isinstance(message, dict):
            continue
        item = dict(message)
        contents = item.pop("contents", None)
        if "content" not in item and isinstance(contents, list):
            item["content"] = [c.get("message_content", c) for c in contents
                               if isinstance(c, dict)]
        calls = item.pop("tool_calls", None)
        if isinstance(calls, list):
            item["tool_calls"] = [c.get("tool_call", c) for c in calls if isinstance(c, dict)]
        raw.append(item)
    return to_messages(raw, default_role)


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    entries = unflatten(attrs, prefix)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


# keys of content blocks without a ``type`` (Bedrock Converse, Strands Agents)
_BLOCK_KEYS = frozenset({"text", "toolUse", "toolResult", "image", "document", "video",
                         "reasoningContent"})


def blocks_json(value: Any) -> Any:
    """Content an instrumentation wrote as JSON text because it was not a string (content
    parts, Anthropic or Bedrock blocks): the blocks back as a list; else ``value``."""
    if isinstance(value, str) and value.startswith("[{"):
        parts = jsonish(value)
        if isinstance(parts, list) and parts and all(
                isinstance(p, dict) and ("type" in p or not _BLOCK_KEYS.isdisjoint(p))
                for p in parts):
            return parts
    return value


def _json_content(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenLLMetry's indexed messages, whose ``content`` is JSON text when it was not a
    string: the parts back as a list."""
    return [{**entry, "content": blocks_json(entry["content"])} if "content" in entry
            else entry for entry in entries]


# an event carrying a whole call's content (the GenAI conventions' latest form)
DETAILS_EVENTS = ("gen_ai.client.inference.operation.details",)
_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def span_messages(span: SpanView) -> tuple[list[Message], list[Message]]:
    """(input messages, output messages) of an LLM span, whichever convention it uses."""
    a = span.attributes
    for event in span.events:  # a call's content as a span event (Strands, latest semconv)
        if event.get("name") in DETAILS_EVENTS:
            a = {**(event.get("attributes") or {}), **a}
    inputs: list[Message] = []
    outputs: list[Message] = []
    if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a:
        inputs = to_messages(a.get("gen_ai.input.messages"))
        outputs = to_messages(a.get("gen_ai.output.messages"), "assistant")
        system = jsonish(a.get("gen_ai.system_instructions"))
        if system:
            inputs = [Message(role="system", content=as_text(system)), *inputs]
    elif any(k.startswith("llm.input_messages.") or k.startswith("llm.output_messages.")
             for k in a):
        inputs = _oi_messages(a, "llm.input_messages.", "user")
        outputs = _oi_messages(a, "llm.output_messages.", "assistant")
    elif any(k.startswith("gen_ai.prompt.0.") or k.startswith("gen_ai.completion.0.")
             for k in a):
        inputs = to_messages(_json_content(_indexed(a, "gen_ai.prompt.")))
        outputs = to_messages(_json_content(_indexed(a, "gen_ai.completion.")), "assistant")
    elif "gen_ai.prompt" in a or "gen_ai.completion" in a:
        inputs = to_messages(a.get("gen_ai.prompt"))
        outputs = to_messages(a.get("gen_ai.completion"), "assistant")
    elif "ai.prompt.messages" in a or "ai.prompt" in a:
        inputs, outputs = vercel_messages(a)
    if not inputs and not outputs:
        for event in span.events:
            role = _EVENT_ROLES.get(event.get("name", ""))
            body = dict(event.get("attributes") or {})
            if event.get("name") == "gen_ai.content.prompt":  # Semantic Kernel, semconv < 1.28
                inputs.extend(to_messages(body.get("gen_ai.prompt")))
            elif event.get("name") == "gen_ai.content.completion":
                outputs.extend(to_messages(body.get("gen_ai.completion"), "assistant"))
            elif role:
                body.setdefault("role", role)
                if "content" in body:  # Strands writes its content blocks as JSON
                    body["content"] = blocks_json(body["content"])
                inputs.extend(to_messages(body, role))
            elif event.get("name") == "gen_ai.choice":
                message = body.get("message", body)
                blocks = blocks_json(message)
                if isinstance(blocks, list):  # Strands: the answer's content blocks
                    message = {"role": "assistant", "content": blocks}
                outputs.extend(to_messages(message, "assistant"))
    if not inputs and not outputs and ("request_data" in a or "response_data" in a):
        inputs = to_messages(a.get("request_data"))  # Logfire: the request and response bodies
        outputs = to_messages(a.get("response_data"), "assistant")
    if not inputs and not outputs:
        source_in = a.get("input.value", a.get("input"))
        source_out = a.get("output.value", a.get("output"))
        if _is_llm(span) or _looks_chat(source_in):
            inputs = to_messages(source_in)
            outputs = to_messages(source_out, "assistant")
    elif not outputs:
        outputs = to_messages(a.get("output.value", a.get("output")), "assistant")
    return inputs, outputs


def vercel_messages(a: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """The Vercel AI SDK's ``ai.*`` span attributes: ``ai.prompt.messages`` (a call's
    messages) or ``ai.prompt`` (``{system, prompt | messages}``), and the response as
    ``ai.response.text`` / ``ai.response.object`` / ``ai.response.toolCalls``."""
    if "ai.prompt.messages" in a:
        inputs = to_messages(a["ai.prompt.messages"])
    else:
        inputs = to_messages(jsonish(a.get("ai.prompt")))
    calls = []
    for raw in jsonish(a.get("ai.response.toolCalls")) or []:
        if isinstance(raw, dict) and raw.get("toolName"):
            args = raw.get("input", raw.get("args"))
            calls.append(ToolCall(id=_str(raw.get("toolCallId")), name=str(raw["toolName"]),
                                  arguments=args))
    text = a.get("ai.response.text")
    if text is None and a.get("ai.response.object") is not None:
        text = a["ai.response.object"]
    outputs = []
    if text is not None or calls:
        outputs = [Message(role="assistant", content=as_text(text), tool_calls=calls)]
    return inputs, outputs


def _looks_chat(value: Any) -> bool:
    value = jsonish(value)
    if isinstance(value, dict):
        value = value.get("messages")
    return isinstance(value, list) and any(isinstance(v, dict) and "role" in v for v in value)


_LLM_OPERATIONS = ("chat", "text_completion", "generate_content")


def _is_vercel_call(span: SpanView) -> bool:
    """A Vercel AI SDK provider call (``ai.generateText.doGenerate``, ``...doStream``)."""
    op = str(span.attributes.get("ai.operationId") or span.attributes.get("operation.name")
             or span.name)
    return op.startswith("ai.") and (".doGenerate" in op or ".doStream" in op)


def _is_llm(span: SpanView) -> bool:
    a = span.attributes
    return (str(a.get("openinference.span.kind", "")).upper() == "LLM"
            or a.get("gen_ai.operation.name") in _LLM_OPERATIONS or _is_vercel_call(span))


def span_kind(span: SpanView) -> SpanKind:
    a = span.attributes
    oi = str(a.get("openinference.span.kind", "")).upper()
    op = a.get("gen_ai.operation.name")
    if oi == "LLM" or op in _LLM_OPERATIONS or _is_vercel_call(span):
        return SpanKind.llm
    traceloop = a.get("traceloop.span.kind")
    if oi == "TOOL" or op == "execute_tool" or "ai.toolCall.name" in a or traceloop == "tool":
        return SpanKind.tool
    if oi in ("RETRIEVER", "RERANKER") or "retrieval.documents.0.document.content" in a \
            or "gen_ai.retrieval.documents" in a:
        return SpanKind.retrieval
    if oi == "AGENT" or op in ("invoke_agent", "create_agent") or (
            str(a.get("ai.operationId") or "").startswith("ai.")) or traceloop == "agent":
        return SpanKind.agent
    if oi == "CHAIN" or traceloop in ("workflow", "task"):
        return SpanKind.chain
    return SpanKind.other


def span_documents(span: SpanView) -> list[dict[str, Any]]:
    """The documents a retrieval span returned, as the fields of each :class:`Document`
    (values of the field types: the trace validates them with the rest, at once)."""
    a = span.attributes
    docs: list[dict[str, Any]] = []
    for entry in _indexed(a, "retrieval.documents."):
        doc = entry.get("document", entry)
        if not isinstance(doc, dict):
            continue
        meta = jsonish(doc.get("metadata"))
        docs.append({"id": _str(doc.get("id")), "content": as_text(doc.get("content")),
                     "score": number(doc.get("score")),
                     "metadata": meta if isinstance(meta, dict) else {}})
    for doc in jsonish(a.get("gen_ai.retrieval.documents")) or []:
        if isinstance(doc, dict):
            docs.append({"id": _str(doc.get("id")),
                         "content": as_text(doc.get("content", doc.get("text", ""))),
                         "score": number(doc.get("score"))})
    return docs


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def span_tool_call(span: SpanView) -> ToolCall | None:
    """The call a tool span ran, with its result."""
    a = span.attributes
    name = a.get("gen_ai.tool.name") or a.get("tool.name") or a.get("ai.toolCall.name") \
        or a.get("traceloop.entity.name") or span.name
    if not name:
        return None
    arguments = _first(a, "gen_ai.tool.call.arguments", "tool.parameters", "ai.toolCall.args",
                       "ai.toolCall.input", "input.value", "input", "traceloop.entity.input")
    result = _first(a, "gen_ai.tool.call.result", "ai.toolCall.result", "ai.toolCall.output",
                    "output.value", "output", "traceloop.entity.output")
    if "traceloop.entity.input" in a or "traceloop.entity.output" in a:
        arguments, result = _traceloop_call(a, arguments, result)
    return ToolCall(id=_str(a.get("gen_ai.tool.call.id") or a.get("tool_call.id")
                            or a.get("ai.toolCall.id")),
                    name=str(name), arguments=jsonish(arguments), result=result)


def _traceloop_call(a: dict[str, Any], arguments: Any, result: Any) -> tuple[Any, Any]:
    """OpenLLMetry's tool spans write the call as JSON: ``{"args": [...], "kwargs": {...}}``
    and the return value JSON-encoded (a string result in quotes): read both back."""
    if arguments is a.get("traceloop.entity.input"):
        call = jsonish(arguments)
        if isinstance(call, dict) and set(call) <= {"args", "kwargs"}:
            args, kwargs = call.get("args") or [], call.get("kwargs") or {}
            arguments = kwargs if not args else call
    if result is a.get("traceloop.entity.output") and isinstance(result, str):
        decoded = jsonish(result, 1)
        if isinstance(decoded, str):
            result = decoded
    return arguments, result


_EVALUATION_KEYS = ("evaluation.name", "evaluation.score", "evaluation.label")


def span_evaluations(span: SpanView, trace_id: str) -> list[AnnotationRecord]:
    """OpenInference ``evaluation.*`` attributes and GenAI evaluation events as records."""
    out: list[AnnotationRecord] = []
    a = span.attributes
    if not a.keys().isdisjoint(_EVALUATION_KEYS):
        kind = str(a.get("evaluation.annotator_kind", "")).upper()
        name = _str(a.get("evaluation.name"))
        out.append(feedback_record(
            key=f"otel:{trace_id}:{span.span_id}:evaluation:{name}", trace_id=trace_id,
            source=Source.reviewer if kind == "HUMAN" else Source.evaluator, name=name,
            value=a.get("evaluation.score"), label=_str(a.get("evaluation.label")),
            explanation=_str(a.get("evaluation.explanation")), span_id=span.span_id,
            metadata={"annotator_kind": kind} if kind else {}))
    for index, event in enumerate(span.events):
        if event.get("name") != "gen_ai.evaluation.result":
            continue
        ea = event.get("attributes") or {}
        name = _str(ea.get("gen_ai.evaluation.name"))
        out.append(feedback_record(
            key=f"otel:{trace_id}:{span.span_id}:event{index}:{name}", trace_id=trace_id,
            source=Source.evaluator, name=name, value=ea.get("gen_ai.evaluation.score.value"),
            label=_str(ea.get("gen_ai.evaluation.score.label")),
            explanation=_str(ea.get("gen_ai.evaluation.explanation")), span_id=span.span_id,
            created_at=event.get("time")))
    return out


def _int(value: Any) -> int | None:
    n = number(value)
    return int(n) if n is not None and n >= 0 else None


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` with a value (not None, not "")."""
    if attrs.keys().isdisjoint(keys):  # the usual case, told at C speed
        return None
    for key in keys:
        value = attrs.get(key)
        if value not in (None, ""):
            return value
    return None


@cache
def _meta_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key for name in names for key in (
        name, f"app.{name}", f"metadata.{name}", f"ai.telemetry.metadata.{name}"))


def _meta_lookup(attrs: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """A metadata value from plain attributes, OpenInference's ``metadata`` JSON or the
    Vercel AI SDK's ``ai.telemetry.metadata.*``."""
    keys = _meta_keys(names)
    if "metadata" not in attrs and attrs.keys().isdisjoint(keys):  # the usual case
        return None
    value = _first(attrs, *keys)
    if value is not None:
        return str(value)
    if "metadata" not in attrs:
        return None
    meta = jsonish(attrs["metadata"])
    if isinstance(meta, dict):
        for name in names:
            if meta.get(name) not in (None, ""):
                return str(meta[name])
    return None


def main_call(llm: list[tuple[SpanView, list[Message], list[Message]]]
              ) -> tuple[SpanView, list[Message], list[Message]]:
    """The trace's main model call: the last to end, passing over an LLM span that wraps
    another one (LlamaIndex's ``OpenAI.predict`` holds the prompt template, its child
    ``OpenAI.chat`` the messages the provider received)."""
    ids = {span.span_id for span, _, _ in llm}
    wrappers = {span.parent_span_id for span, _, _ in llm if span.parent_span_id in ids}
    calls = [row for row in llm if row[0].span_id not in wrappers]
    return (calls or llm)[-1]


def _key_with_prefix(attrs: dict[str, Any], prefix: str) -> bool:
    """Whether any key starts with ``prefix`` (one C-speed search over the joined keys)."""
    return ("\n" + "\n".join(attrs)).find("\n" + prefix) >= 0


def vercel_telemetry(spans: list[SpanView]) -> dict[str, Any]:
    """The Vercel AI SDK's telemetry settings (``ai.telemetry.functionId``,
    ``ai.telemetry.metadata.*``) from the outermost span carrying them: the SDK's own
    ``ai.generateText`` span is often a child of the application's root span."""
    carrying = [s for s in spans if _key_with_prefix(s.attributes, "ai.telemetry.")]
    if not carrying:
        return {}
    ids = {s.span_id for s in carrying}
    outer = [s for s in carrying if s.parent_span_id not in ids] or carrying
    first = min(outer, key=lambda s: (s.start or _LATEST))
    return {k: v for k, v in first.attributes.items() if k.startswith("ai.telemetry.")}


def build_trace(trace_id: str, spans: list[SpanView], source: str) -> Trace:
    """One Trace from all spans of one trace id."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    root = min(roots or spans, key=lambda s: (s.start or _LATEST))
    by_end = sorted(spans, key=lambda s: (s.end or s.start or _EARLIEST))
    llm: list[tuple[SpanView, list[Message], list[Message]]] = []
    # documents, spans and metadata are collected as the fields of their models (of the
    # field types, so they cannot fail) and validated with the trace in one pass: pydantic
    # builds nested models in its core at about half the cost of constructing each one
    documents: list[dict[str, Any]] = []
    tool_results: list[ToolCall] = []
    feedback: list[AnnotationRecord] = []
    out_spans: list[dict[str, Any]] = []
    cost = 0.0
    have_cost = False
    kinds = {s.span_id: span_kind(s) for s in spans}
    readings: dict[str, Reading] = {}
    usage: list[tuple[SpanView, int | None, int | None, bool]] = []
    for span in by_end:
        kind = kinds[span.span_id]
        if kind in (SpanKind.llm, SpanKind.other):
            with reading() as read:
                inputs, outputs = span_messages(span)
            if inputs or outputs:
                kind = kinds[span.span_id] = SpanKind.llm
                llm.append((span, inputs, outputs))
                readings[span.span_id] = read
        if kind == SpanKind.retrieval:
            documents.extend(span_documents(span))
        if kind == SpanKind.tool:
            call = span_tool_call(span)
            if call:
                tool_results.append(call)
        a = span.attributes
        if not a.keys().isdisjoint(_USAGE_KEYS):
            tin = _int(_first(a, *_INPUT_TOKENS))
            tout = _int(_first(a, *_OUTPUT_TOKENS))
            if tin is not None or tout is not None:
                usage.append((span, tin, tout, kind == SpanKind.llm))
            c = number(_first(a, *_COST))
            if c is not None and c >= 0:
                have_cost, cost = True, cost + c
        if span.events or not a.keys().isdisjoint(_EVALUATION_KEYS):  # few spans have any
            feedback.extend(span_evaluations(span, trace_id))
        out_spans.append({"span_id": span.span_id, "parent_span_id": span.parent_span_id,
                          "name": span.name, "kind": kind, "start_time": span.start,
                          "end_time": span.end, "error": span.error,
                          "attributes": _span_summary(a)})
    repeats = _repeated_calls(spans, kinds, {span.span_id for span, _, _ in llm})
    if repeats:
        usage = [u for u in usage if u[0].span_id not in repeats]
        for row in out_spans:
            if row["span_id"] in repeats:
                row["kind"] = kinds[row["span_id"]] = SpanKind.other
    input_tokens, output_tokens, have_tokens = _count_tokens(usage, kinds)
    system_prompt, output = "", ""
    messages: list[Message] = []
    main_attrs: dict[str, Any] = {}
    trace_reading: Reading | None = None
    if llm:
        main, inputs, outputs = main_call(llm)
        main_attrs = main.attributes
        trace_reading = readings[main.span_id]
        system_prompt, messages = split_system(inputs)
        output = last_answer(outputs)
        if not output and outputs:
            # the last step was a tool call
            messages = [*messages, *(o for o in outputs if o.content or o.tool_calls)]
    if not output:
        output = answer_text(jsonish(_first(root.attributes, "output.value", "output",
                                            "ai.response.text")))
    if any(c.id is None for m in messages for c in m.tool_calls):
        messages = fill_call_ids(messages, _answered_calls(llm))
    messages = attach_tool_results(messages, tool_results)
    ra = {**vercel_telemetry(spans), **root.resource, **root.attributes}
    if not main_attrs:  # no LLM span with messages: the last one that names a model
        main_attrs = next((s.attributes for s in reversed(by_end)
                           if _first(s.attributes, *_MODEL_KEYS) is not None), {})
    ma = {**root.resource, **main_attrs} if main_attrs else ra
    invocation = jsonish(ma.get("llm.invocation_parameters"))
    invocation = invocation if isinstance(invocation, dict) else {}
    latency = None
    if root.start and root.end:
        latency = max((root.end - root.start).total_seconds() * 1000.0, 0.0)
    errors = [s.error for s in spans if s.error]
    root_error = root.error or (errors[0] if errors else None)
    metadata = dict(  # the fields of TraceMetadata
        model=_str(_first(ma, "gen_ai.request.model", "llm.request.model_name")
                   or invocation.get("model") or _first(ma, "llm.model_name", "ai.model.id")),
        model_version=_str(_first(ma, "gen_ai.response.model", "llm.response.model_name",
                                  "ai.response.model", "llm.model_name")),
        prompt_name=_str(_first(ma, "gen_ai.prompt.name", "llm.prompt_template.name")
                         or _first(ra, "ai.telemetry.functionId")),
        prompt_version=_str(_first(ma, "llm.prompt_template.version", "gen_ai.prompt.version")),
        product_area=_meta_lookup(ra, ("product_area", "product.area")),
        user_segment=_meta_lookup(ra, ("user_segment", "user.segment")),
        environment=_str(_first(ra, "deployment.environment.name", "deployment.environment"))
        or _meta_lookup(ra, ("environment",)),
        latency_ms=latency,
        input_tokens=input_tokens if have_tokens else None,
        output_tokens=output_tokens if have_tokens else None,
        cost_usd=cost if have_cost else None,
        error=root_error,
        start_time=root.start, end_time=root.end,
        extra={k: v for k, v in {
            "root span": root.name,
            "provider": _first(ma, "gen_ai.provider.name", "gen_ai.system", "llm.provider",
                               "ai.model.provider"),
            "conversation id": _first(ra, "gen_ai.conversation.id", "session.id")
            or _meta_lookup(ra, ("session_id", "sessionId", "conversation_id")),
            "user id": _first(ra, "user.id") or _meta_lookup(ra, ("user_id", "userId")),
            **{k.removeprefix("ai.telemetry."): v for k, v in ra.items()
               if k.startswith("ai.telemetry.metadata.")},
            "service": _first(ra, "service.name"),
            "service version": _first(ra, "service.version"),
            "agent": _first(ra, "gen_ai.agent.name"),
        }.items() if v not in (None, "")},
    )
    trace = Trace.model_validate({
        "trace_id": trace_id, "system_prompt": system_prompt, "messages": messages,
        "documents": documents, "output": output, "spans": out_spans, "metadata": metadata,
        "source": source, "feedback": feedback})
    trace.reading = trace_reading or Reading()
    return trace


_RESPONSE_ID_KEYS = ("gen_ai.response.id", "ai.response.id", "llm.response.id")


def _repeated_calls(spans: list[SpanView], kinds: dict[str, SpanKind],
                    with_messages: set[str]) -> set[str]:
    """LLM spans that repeat another span's record of the same model call: two
    instrumentations of one request (e.g. the Anthropic SDK's own spans beside
    OpenLLMetry's, as siblings) give the provider's response id to both. Per id one span
    is kept, the one with messages if any; the others' ids are returned."""
    by_response: dict[str, list[SpanView]] = {}
    for span in spans:
        if kinds[span.span_id] == SpanKind.llm:
            rid = _first(span.attributes, *_RESPONSE_ID_KEYS)
            if rid not in (None, ""):
                by_response.setdefault(str(rid), []).append(span)
    repeats: set[str] = set()
    for group in by_response.values():
        if len(group) > 1:
            keep = next((s for s in group if s.span_id in with_messages), group[0])
            repeats.update(s.span_id for s in group if s is not keep)
    return repeats


_INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                 "llm.token_count.prompt", "ai.usage.inputTokens", "ai.usage.promptTokens",
                 "gen_ai.response.prompt_tokens")  # the last: Semantic Kernel's
_OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                  "llm.token_count.completion", "ai.usage.outputTokens",
                  "ai.usage.completionTokens", "gen_ai.response.completion_tokens")
_COST = ("gen_ai.usage.cost", "llm.cost.total")
_USAGE_KEYS = frozenset(_INPUT_TOKENS + _OUTPUT_TOKENS + _COST)
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name",
               "ai.model.id")


def _count_tokens(usage: list[tuple[SpanView, int | None, int | None, bool]],
                  kinds: dict[str, SpanKind]) -> tuple[int, int, bool]:
    """Tokens of the trace: summed over LLM spans, leaving out an LLM span inside another
    (two instrumentations of one call, e.g. OpenInference over the SDK's own spans); from
    the other spans only when no LLM span counts any (and again only the outermost)."""
    llm_rows = [u for u in usage if u[3]]
    rows = llm_rows or usage
    counted = {u[0].span_id for u in rows}
    tin = tout = 0
    for span, a, b, _ in rows:
        if span.parent_span_id in counted and (
                not llm_rows or kinds.get(span.parent_span_id) == SpanKind.llm):
            continue
        tin += a or 0
        tout += b or 0
    return tin, tout, bool(rows)


_SUMMARY_KEYS = ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
                 "gen_ai.tool.name", "openinference.span.kind", "llm.model_name", "tool.name")


def _span_summary(attrs: dict[str, Any]) -> dict[str, Any]:
    """The few attributes worth keeping per span (full content already lives in the trace)."""
    return {k: attrs[k] for k in _SUMMARY_KEYS if k in attrs}


def _call_key(call: ToolCall) -> tuple[str, str]:
    args = jsonish(call.arguments)
    return call.name, json.dumps(args, sort_keys=True) if not isinstance(args, str) else args


def _answered_calls(llm: list[tuple[SpanView, list[Message], list[Message]]]
                    ) -> list[ToolCall]:
    """Tool calls with ids the model calls answered: their output messages, and their raw
    ``output.value`` where the flattened messages left the ids out."""
    found = [c for _, _, outs in llm for o in outs for c in o.tool_calls if c.id]
    for span, _, _ in llm:
        raw = jsonish(span.attributes.get("output.value"))
        if isinstance(raw, dict | list):
            with reading():
                found += [c for m in to_messages(raw, "assistant") for c in m.tool_calls if c.id]
    return found


def fill_call_ids(messages: list[Message], answered: list[ToolCall]) -> list[Message]:
    """Tool call ids a conversation lost (OpenInference's LangChain JS instrumentation
    writes a call's input messages without them): from the earlier model call that made the
    same call (same name and arguments), and on the tool results right after it, in order,
    when there are as many results as calls."""
    if not answered or not any(c.id is None for m in messages for c in m.tool_calls):
        return messages
    ids = {_call_key(c): c.id for c in answered}
    out: list[Message] = []
    pending: list[str | None] = []
    for message in messages:
        if message.tool_calls:
            calls = [c if c.id else c.model_copy(update={"id": ids.get(_call_key(c))})
                     for c in message.tool_calls]
            message = message.model_copy(update={"tool_calls": calls})
            later = messages[len(out) + 1:]
            results = next((i for i, m in enumerate(later) if m.role != "tool"), len(later))
            pending = [c.id for c in calls] if results == len(calls) else []
        elif message.role == "tool" and pending:
            call_id = pending.pop(0)
            if message.tool_call_id is None and call_id is not None:
                message = message.model_copy(update={"tool_call_id": call_id})
        else:
            pending = []
        out.append(message)
    return out


def attach_tool_results(messages: list[Message], results: list[ToolCall]) -> list[Message]:
    """Give tool calls without a result the result of the tool span that ran them."""
    if not results:
        return messages
    answered = {m.tool_call_id for m in messages if m.role == "tool" and m.tool_call_id}
    by_id = {r.id: r for r in results if r.id}
    unused = list(results)
    out = []
    for message in messages:
        calls = []
        changed = False
        for call in message.tool_calls:
            if call.result is None and call.id not in answered:
                match = by_id.get(call.id) if call.id else None
                if match is None:
                    match = next((r for r in unused if r.name == call.name), None)
                if match is not None:
                    call = call.model_copy(update={"result": match.result})
                    changed = True
                    if match in unused:
                        unused.remove(match)
            calls.append(call)
        out.append(message.model_copy(update={"tool_calls": calls}) if changed else message)
    if not any(m.tool_calls for m in messages):
        # Tool spans without a call in the conversation (agent frameworks): show them.
        out.append(Message(role="assistant", tool_calls=[
            ToolCall(id=r.id, name=r.name, arguments=r.arguments, result=r.result)
            for r in results]))
    return out


def input_hash(trace: Trace) -> str:
    """A stable hash of what the model was given (system prompt and conversation)."""
    body = json.dumps([trace.system_prompt, [(m.role, m.content) for m in trace.messages]],
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:24]
