"""Traces for the review screen's browser tests: a long agent trace (many tool round trips
with long JSON results, retrieved documents), a code answer whose indentation matters, and
the hostile one. Built as the native format's typed models; the tests compare what the
labeling UI shows with these sources."""

from __future__ import annotations

import json

from ls_llmtrace.models import Document, Message, ToolCall, Trace, TraceMetadata

HOSTILE = ("<script>window.__pwned=1;document.title='pwned'</script>"
           "<img src=x onerror=\"window.__pwned=2\"><b>bold?</b>")

CODE_ANSWER = '''Here is a fixed version:

```python
def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
```

| input      | median |
|------------|--------|
| [3, 1, 2]  |      2 |
| [4, 1]     |    2.5 |'''


def _metadata(model: str) -> TraceMetadata:
    return TraceMetadata(model=model, model_version=f"{model}-2026-01", product_area="support",
                         user_segment="enterprise", environment="prod", latency_ms=8421.0,
                         input_tokens=5120, output_tokens=640, cost_usd=0.0312,
                         prompt_name="agent", prompt_version="7")


def long_agent_trace(trace_id: str = "screen-long-agent", steps: int = 8) -> Trace:
    """An order-support agent: ``steps`` tool round trips, each result a long JSON
    document, then a final answer; with three retrieved policy documents."""
    messages = [Message(role="user", content="My order 4411 has not arrived. Where is it, "
                        "and can I get a refund if it is lost?")]
    for step in range(steps):
        call = ToolCall(id=f"call-{step}", name=f"lookup_{step % 3}",
                        arguments={"order_id": "4411", "page": step})
        messages.append(Message(role="assistant", content=f"Step {step + 1}: checking page "
                                f"{step} of the order history.", tool_calls=[call]))
        events = [{"at": f"2026-11-{10 + i:02d}T08:00:00Z", "where": f"hub {i}",
                   "status": "in transit", "note": "scanned at the sorting centre " * 2}
                  for i in range(12)]
        messages.append(Message(role="tool", tool_call_id=call.id,
                                content=json.dumps({"order": "4411", "events": events},
                                                   indent=2)))
    documents = [Document(id=f"policy-{i}", score=0.9 - i / 10,
                          content=(f"Refund policy section {i}. Lost parcels are refunded "
                                   "after 14 days without a scan. ") * 8)
                 for i in range(3)]
    return Trace(trace_id=trace_id, system_prompt="You are the order-support agent.\n"
                 "  - Use the tools.\n  - Quote the policy.", messages=messages,
                 documents=documents, metadata=_metadata("gpt-4o"),
                 output="Your parcel is lost; you will get a full refund today.")


def code_answer_trace(trace_id: str = "screen-code-answer") -> Trace:
    return Trace(trace_id=trace_id, metadata=_metadata("gpt-4o-mini"),
                 messages=[Message(role="user", content="My median function is wrong for "
                                   "even lengths:\n\n    def median(v):\n        return "
                                   "sorted(v)[len(v) // 2]")],
                 output=CODE_ANSWER)


def hostile_trace(trace_id: str = "screen-hostile") -> Trace:
    return Trace(
        trace_id=trace_id,
        system_prompt="You answer weather questions.",
        messages=[
            Message(role="user", content="What is the weather in Paris? " + HOSTILE),
            Message(role="assistant", tool_calls=[
                ToolCall(id="call-7", name="get_weather", arguments={"city": "Paris"})]),
            Message(role="tool", content="rainy, 57F", tool_call_id="call-7"),
        ],
        documents=[Document(id="doc-3", content="Paris forecast: rain all day. " + HOSTILE)],
        output="It is sunny in Paris. " + HOSTILE,
    )
