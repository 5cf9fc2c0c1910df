"""Benchmark: import conversion of synthetic traces of realistic size, per format.

For each format, writes N traces (default 100,000) to a JSON Lines file, then measures
in the same run:

* **conversion**: the importer (parse, normalize into Trace) + ``trace_to_task`` + the
  request body of the task as the import sends it to Label Studio
  (``labelstudio.client.encode_tasks``), no network;
* **baseline**: plain ``json.loads`` + ``json.dumps`` of every line of the same bytes;
* **peak memory** of the conversion (tracemalloc, a separate pass) at N/10 and N traces:
  streaming means the two are about the same.

Prints traces/s for both and the ratio conversion/baseline (how many times slower than
merely decoding and re-encoding the same JSON). Run by hand::

    .venv/bin/python bench/bench_import.py [--count 100000] [--repeat 2]
        [--formats native,otlp,langfuse]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import figure  # noqa: E402
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task  # noqa: E402
from ls_llmtrace.ingest.importers import read_any  # noqa: E402
from ls_llmtrace.schema.model import load_schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "order", "refund", "policy", "customer", "account", "invoice", "shipping",
         "delay", "warehouse", "support", "agent", "answer", "question", "model", "retrieval",
         "document", "tool", "call", "result", "latency", "billing", "subscription", "plan",
         "upgrade", "cancel", "error", "timeout", "region", "europe", "america", "price"]


def _text(rng: random.Random, low: int, high: int) -> str:
    n = rng.randint(low, high)
    out: list[str] = []
    size = 0
    while size < n:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out).capitalize() + "."


def _content(rng: random.Random, i: int) -> dict[str, Any]:
    """One trace's content: ~3 KB, as a support assistant with RAG and a tool call."""
    turns = rng.randint(1, 3)
    messages = []
    for t in range(turns):
        messages.append({"role": "user", "content": _text(rng, 60, 400)})
        if t < turns - 1:
            messages.append({"role": "assistant", "content": _text(rng, 100, 500)})
    return {
        "trace_id": f"bench-{i:07d}", "system": _text(rng, 300, 600), "messages": messages,
        "docs": [_text(rng, 300, 700) for _ in range(rng.randint(1, 3))],
        "tool_args": {"order_id": rng.randint(1000, 99999)},
        "tool_result": _text(rng, 40, 200), "output": _text(rng, 150, 700),
        "model": rng.choice(["gpt-4o", "gpt-4o-mini"]), "latency_ms": rng.uniform(300, 9000),
        "tokens": (rng.randint(200, 3000), rng.randint(50, 800)),
    }


def native_record(c: dict[str, Any]) -> dict[str, Any]:
    call_id = f"call-{c['trace_id']}"
    return {
        "trace_id": c["trace_id"], "system_prompt": c["system"],
        "messages": [*c["messages"],
                     {"role": "assistant", "tool_calls": [
                         {"id": call_id, "name": "lookup_order", "arguments": c["tool_args"]}]},
                     {"role": "tool", "tool_call_id": call_id, "content": c["tool_result"]}],
        "documents": [{"id": f"kb-{n}", "content": d, "score": 0.8} for n, d in
                      enumerate(c["docs"])],
        "output": c["output"],
        "metadata": {"model": c["model"], "latency_ms": c["latency_ms"],
                     "input_tokens": c["tokens"][0], "output_tokens": c["tokens"][1],
                     "product_area": "orders", "environment": "prod"},
        "source": "native",
    }


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def otlp_record(c: dict[str, Any], i: int) -> dict[str, Any]:
    trace_id = f"{i:032x}"
    start = 1_700_000_000_000_000_000 + i * 10_000_000_000
    end = start + int(c["latency_ms"] * 1e6)
    call_id = f"call-{i}"

    def span(n: int, name: str, attrs: dict[str, Any], parent: int | None) -> dict[str, Any]:
        return {"traceId": trace_id, "spanId": f"{i:012x}{n:04x}",
                "parentSpanId": f"{i:012x}{parent:04x}" if parent is not None else "",
                "name": name, "kind": 1, "startTimeUnixNano": str(start + n),
                "endTimeUnixNano": str(end - n),
                "attributes": [_attr(k, v) for k, v in attrs.items()], "status": {}}

    inputs = [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
              for m in c["messages"]]
    inputs.append({"role": "assistant", "parts": [{"type": "tool_call", "id": call_id,
                                                   "name": "lookup_order",
                                                   "arguments": c["tool_args"]}]})
    inputs.append({"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id,
                                              "response": c["tool_result"]}]})
    spans = [
        span(3, "chat", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": c["model"],
            "gen_ai.usage.input_tokens": c["tokens"][0],
            "gen_ai.usage.output_tokens": c["tokens"][1],
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": c["system"]}]),
            "gen_ai.input.messages": json.dumps(inputs),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                {"type": "text", "content": c["output"]}], "finish_reason": "stop"}])}, 0),
        span(2, "execute_tool", {"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "lookup_order",
                                 "gen_ai.tool.call.id": call_id,
                                 "gen_ai.tool.call.arguments": json.dumps(c["tool_args"]),
                                 "gen_ai.tool.call.result": c["tool_result"]}, 0),
        span(1, "retrieve", {"openinference.span.kind": "RETRIEVER", **{
            f"retrieval.documents.{n}.document.{k}": v for n, d in enumerate(c["docs"])
            for k, v in (("id", f"kb-{n}"), ("content", d), ("score", 0.8))}}, 0),
        span(0, "invoke_agent", {"gen_ai.operation.name": "invoke_agent"}, None),
    ]
    return {"resourceSpans": [{"resource": {"attributes": [
        _attr("service.name", "support"), _attr("deployment.environment.name", "prod")]},
        "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}


def langfuse_record(c: dict[str, Any], i: int) -> dict[str, Any]:
    trace_id = c["trace_id"]
    inputs = [{"role": "system", "content": c["system"]}, *c["messages"]]
    return {
        "trace": {"id": trace_id, "name": "support", "timestamp": "2025-06-01T10:00:00.000Z",
                  "environment": "prod", "latency": c["latency_ms"] / 1000, "tags": [],
                  "input": json.dumps(c["messages"][-1]["content"]),
                  "output": json.dumps(c["output"]), "metadata": "{}",
                  "scores": [{"id": f"s-{i}", "name": "helpfulness", "value": 0.7,
                              "source": "EVAL", "dataType": "NUMERIC", "comment": "ok",
                              "timestamp": "2025-06-01T10:00:05.000Z"}],
                  "corrections": []},
        "observations": [
            {"id": f"{i:012x}0001", "traceId": trace_id, "type": "RETRIEVER", "name": "search",
             "startTime": "2025-06-01T10:00:00.100Z", "endTime": "2025-06-01T10:00:00.300Z",
             "input": "query", "output": json.dumps([{"page_content": d, "metadata": {}}
                                                      for d in c["docs"]])},
            {"id": f"{i:012x}0002", "traceId": trace_id, "type": "GENERATION", "name": "chat",
             "startTime": "2025-06-01T10:00:00.400Z", "endTime": "2025-06-01T10:00:02.000Z",
             "model": c["model"], "input": json.dumps(inputs),
             "output": json.dumps({"role": "assistant", "content": c["output"]}),
             "usageDetails": {"input": c["tokens"][0], "output": c["tokens"][1]},
             "costDetails": {"total": 0.001}},
        ],
    }


WRITERS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "native": lambda c, i: native_record(c), "otlp": otlp_record, "langfuse": langfuse_record}


def write_file(fmt: str, count: int, path: Path) -> int:
    rng = random.Random(42)
    size = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            line = json.dumps(WRITERS[fmt](_content(rng, i), i), ensure_ascii=False) + "\n"
            size += len(line.encode())
            out.write(line)
    return size


def body_encoder(body: str) -> Callable[[dict[str, Any]], Any]:
    """How a task is encoded: ``sent``, as the import sends it (the request body);
    ``json``, with ``json.dumps`` (the same on any commit, for comparisons with commits
    whose import sent its tasks some other way)."""
    if body == "json":
        return lambda task: json.dumps(task, ensure_ascii=False)
    from ls_llmtrace.labelstudio.client import encode_tasks

    return lambda task: encode_tasks([task])


def convert(path: Path, fmt: str, limit: int | None = None, body: str = "sent") -> int:
    schema = load_schema(ROOT / "label_configs" / "default.v1.yaml")
    options = ReviewOptions()
    encode = body_encoder(body)
    n = 0
    for item in read_any(path, fmt):
        if isinstance(item, list):
            raise SystemExit(f"bench input rejected: {item[0]}")
        encode(trace_to_task(item, schema, options))
        n += 1
        if limit and n >= limit:
            break
    return n


def baseline(path: Path) -> int:
    n = 0
    with path.open("rb") as handle:
        for line in handle:
            json.dumps(json.loads(line), ensure_ascii=False)
            n += 1
    return n


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    start = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - start


def peak(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top / 2**10


def lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--formats", default="native,otlp,langfuse")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timing (best kept)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.count:,} traces per format, best of "
          f"{args.repeat}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"{fmt}.jsonl"
            size = write_file(fmt, args.count, path)
            # alternate the two and keep each one's best of --repeat runs: the machine is
            # shared, so a single run of either can be slowed by someone else's work
            t_base = t_conv = float("inf")
            for _ in range(args.repeat):
                n_base, t = timed(lambda p=path: baseline(p))
                t_base = min(t_base, t)
                n_conv, t = timed(lambda p=path, f=fmt: convert(p, f))
                t_conv = min(t_conv, t)
            assert n_base == n_conv == args.count, (n_base, n_conv)
            small = peak(lambda p=path, f=fmt: convert(p, f, args.count // 10))
            full = peak(lambda p=path, f=fmt: convert(p, f))
            print(f"\n[{fmt}] {size / 2**20:.1f} MiB, {size / args.count / 1024:.1f} KiB/trace")
            print(f"  baseline json.loads+dumps    : {n_base / t_base:>7,.0f} traces/s "
                  f"({t_base:.2f} s)")
            print(f"  conversion (import+task+body): {n_conv / t_conv:>7,.0f} traces/s "
                  f"({t_conv:.2f} s)")
            print(f"  ratio conversion/baseline    : {t_conv / t_base:.1f}x the time")
            figure(f"conversion of {args.count:,} {fmt} traces / json.loads+dumps (time)",
                   t_conv / t_base, best=t_conv / t_base,
                   detail=f"{n_conv / t_conv:,.0f} traces/s")
            print(f"  peak traced memory           : {small:,.0f} KiB at {args.count // 10:,} "
                  f"traces, {full:,.0f} KiB at {args.count:,}", flush=True)
            figure(f"conversion memory, {fmt}: peak at {args.count:,} / at "
                   f"{args.count // 10:,} traces", full / small, "flat (~1)", best=full / small,
                   detail=f"{small:,.0f} KiB / {full:,.0f} KiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS of the whole run (incl. writing the inputs): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
