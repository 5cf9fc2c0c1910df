"""Trace -> Label Studio task (pure).

``trace_id`` goes into both ``data`` (kept by every export format) and ``meta`` (kept by
the API and full JSON export), together with the schema version id.
"""

from __future__ import annotations

import json
from typing import Any

from .models import Trace
from .schema import AnnotationSchema

EMPTY_CONVERSATION = "(no conversation before the answer)"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _metadata_table(trace: Trace) -> dict[str, str]:
    meta = trace.metadata
    rows: dict[str, Any] = {
        "trace id": trace.trace_id,
        "source": trace.source,
        "model": meta.model,
        "model version": meta.model_version,
        "prompt": meta.prompt_name,
        "prompt version": meta.prompt_version,
        "product area": meta.product_area,
        "environment": meta.environment,
        "latency ms": meta.latency_ms,
        "input tokens": meta.input_tokens,
        "output tokens": meta.output_tokens,
        "cost usd": meta.cost_usd,
        "error": meta.error,
        "start": meta.start_time.isoformat() if meta.start_time else None,
    }
    return {k: _as_text(v) for k, v in rows.items() if v not in (None, "")}


def trace_to_task(trace: Trace, schema: AnnotationSchema) -> dict[str, Any]:
    """The task JSON for one trace under one schema version."""
    messages = [
        {"role": m.role if not m.name else f"{m.role} ({m.name})",
         "content": m.content or ("(calls " + ", ".join(c.name for c in m.tool_calls) + ")"
                                  if m.tool_calls else "")}
        for m in trace.messages
    ]
    tool_calls = [
        {"name": f"{c.name}" + (f" [{c.id}]" if c.id else ""),
         "content": f"arguments: {_as_text(c.arguments)}\nresult: {_as_text(c.result)}"}
        for c in trace.tool_calls()
    ]
    documents = [
        {"title": f"document {i + 1}" + (f" ({d.id})" if d.id else "")
                  + (f" score {d.score:g}" if d.score is not None else ""),
         "content": d.content}
        for i, d in enumerate(trace.documents)
    ]
    # Paragraphs needs at least one item to render; placeholders say "nothing here".
    data = {
        "trace_id": trace.trace_id,
        "schema_version": schema.version_id,
        "system_prompt": trace.system_prompt or "(none)",
        "messages": messages or [{"role": "(none)", "content": EMPTY_CONVERSATION}],
        "messages_count": len(messages),
        "tool_calls": tool_calls or [{"name": "(none)", "content": "no tool calls"}],
        "documents": documents or [{"title": "(none)", "content": "no retrieved documents"}],
        "answer": trace.output,
        "metadata": _metadata_table(trace),
    }
    meta = {
        "trace_id": trace.trace_id,
        "schema_id": schema.id,
        "schema_version": schema.version,
    }
    return {"data": data, "meta": meta}
