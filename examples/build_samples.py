"""Build examples/sample_traces.jsonl (native format) from the real data in tests/fixtures/.

Run from the repository root: `python examples/build_samples.py`. The output is checked
in; this script documents exactly where each sample trace comes from. These hand-written
mappings are for the samples only; the real importers live in src/ls_llmtrace/importers/.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path("tests/fixtures")
OUT = Path("examples/sample_traces.jsonl")
# HaluEval rows chosen to show both labels: ids with a human "yes" and "no".
HALUEVAL_IDS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
                "15", "16", "17", "18", "19", "20"]


def halueval() -> list[dict]:
    rows = {}
    with (FIXTURES / "halueval/general_data.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            rows[row["ID"]] = row
    out = []
    for rid in HALUEVAL_IDS:
        row = rows[rid]
        out.append({
            "trace_id": f"halueval-general-{rid}",
            "messages": [{"role": "user", "content": row["user_query"]}],
            "output": row["chatgpt_response"],
            "metadata": {"model": "chatgpt", "product_area": "general-qa",
                         "extra": {"dataset": "HaluEval general",
                                   "human_hallucination_label": row["hallucination"]}},
            "source": "halueval",
        })
    return out


def otel_tool_call() -> dict:
    attrs = json.loads((FIXTURES / "otel-genai/otel_genai_client_span_tool_calls.json").read_text())
    messages = []
    for m in json.loads(attrs["gen_ai.input.messages"]):
        text = " ".join(p.get("content", "") for p in m["parts"] if p["type"] == "text")
        calls = [{"id": p["id"], "name": p["name"], "arguments": p["arguments"]}
                 for p in m["parts"] if p["type"] == "tool_call"]
        responses = [p for p in m["parts"] if p["type"] == "tool_call_response"]
        if responses:
            for p in responses:
                messages.append({"role": "tool", "content": str(p["response"]),
                                 "tool_call_id": p["id"]})
        else:
            messages.append({"role": m["role"], "content": text, "tool_calls": calls})
    out_messages = json.loads(attrs["gen_ai.output.messages"])
    answer = " ".join(p.get("content", "") for m in out_messages for p in m["parts"]
                      if p["type"] == "text")
    return {
        "trace_id": "otel-genai-weather-" + attrs["gen_ai.response.id"],
        "messages": messages,
        "output": answer,
        "metadata": {"model": attrs["gen_ai.request.model"],
                     "model_version": attrs["gen_ai.response.model"],
                     "input_tokens": attrs["gen_ai.usage.input_tokens"],
                     "output_tokens": attrs["gen_ai.usage.output_tokens"],
                     "product_area": "weather-assistant"},
        "source": "otel-genai",
    }


def langfuse_pydantic_ai() -> dict:
    path = FIXTURES / "langfuse-traces/pydantic-ai-2025-06-06.trace.json"
    export = json.loads(path.read_text())
    trace = export["trace"]
    gen = next(o for o in export["observations"] if o["type"] == "GENERATION")
    inputs = json.loads(gen["input"])
    output = json.loads(gen["output"])["message"]["content"]
    system = next(m["content"] for m in inputs if m["role"] == "system")
    return {
        "trace_id": "langfuse-" + trace["id"],
        "system_prompt": system,
        "messages": [{"role": m["role"], "content": m["content"]}
                     for m in inputs if m["role"] != "system"],
        "output": output,
        "metadata": {"model": gen["model"], "latency_ms": gen["latency"] * 1000,
                     "input_tokens": gen["usageDetails"]["input"],
                     "output_tokens": gen["usageDetails"]["output"],
                     "cost_usd": gen["costDetails"]["total"],
                     "environment": trace["environment"], "product_area": "docs-qa",
                     "start_time": gen["startTime"], "end_time": gen["endTime"]},
        "source": "langfuse",
    }


def main() -> None:
    traces = [langfuse_pydantic_ai(), otel_tool_call(), *halueval()]
    with OUT.open("w", encoding="utf-8") as f:
        for t in traces:
            f.write(json.dumps(t, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(traces)} traces to {OUT}")


if __name__ == "__main__":
    main()
