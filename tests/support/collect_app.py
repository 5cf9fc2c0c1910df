"""An LLM app instrumented for real, exporting live to ``ls-llmtrace collect``: OpenAI chat
calls against the local fake provider, traced by openinference-instrumentation-openai,
exported by the OpenTelemetry SDK (run in Phoenix's virtualenv, which has them all).

    python collect_app.py calls --endpoint URL --token T --llm URL --questions q.json \
        --truth out.json [--encoding protobuf|json] [--acked acked.jsonl]
    python collect_app.py batches --endpoint URL --token T --llm URL --truth out.json \
        --gap 1.5
    python collect_app.py late --endpoint URL --token T --llm URL --truth out.json \
        --trace-id T --parent-span-id S --question Q

``calls``: one trace per question (the app's root span around one call). ``protobuf``
uses ``opentelemetry-exporter-otlp-proto-http``; ``json`` encodes the same SDK spans with
the exporter's own encoder and posts them as OTLP/JSON (hex ids), as a Collector does. A
question containing ``[fail]`` marks its root span as an error. ``--acked`` appends, per
export the receiver answered 200 to, the span ids it held (what was acknowledged).
``batches``: one trace whose spans reach the receiver in three exports ``--gap`` seconds
apart (two calls, then the root). ``late``: one more call in an existing trace, sent
after it was routed. The ground truth (``--truth``) is what was sent and what came back,
with the ids the SDK assigned.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

SYSTEM = "Answer in one short sentence."


def _ask(client: Any, question: str) -> str:
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
    return str(answer.choices[0].message.content)


def _hex_ids(value: Any) -> Any:
    import base64

    if isinstance(value, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                    and isinstance(v, str) else _hex_ids(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    return value


def _exporter(args: argparse.Namespace) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    url = args.endpoint.rstrip("/") + "/v1/traces"
    headers = {"Authorization": f"Bearer {args.token}"}
    acked = Path(args.acked) if getattr(args, "acked", None) else None

    def remember(spans: Any) -> None:
        if acked is None:
            return
        with acked.open("a") as out:  # one line per acknowledged export
            out.write(json.dumps([[format(s.context.trace_id, "032x"),
                                   format(s.context.span_id, "016x")] for s in spans]) + "\n")

    class Recording(OTLPSpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> Any:
            result = super().export(spans)
            if result == SpanExportResult.SUCCESS:
                remember(spans)
            return result

    class JsonExporter(SpanExporter):  # type: ignore[misc]
        """The SDK's spans, encoded by the OTLP exporter's encoder, sent as OTLP/JSON."""

        def export(self, spans: Any) -> Any:
            from google.protobuf import json_format
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            body = json.dumps(_hex_ids(json_format.MessageToDict(encode_spans(spans))))
            request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
                **headers, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    ok = answer.status == 200
            except OSError:
                ok = False
            if ok:
                remember(spans)
            return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

        def shutdown(self) -> None:
            return None

    if getattr(args, "encoding", "protobuf") == "json":
        return JsonExporter()
    return Recording(endpoint=url, headers=headers, timeout=10)


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(_exporter(args)))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    client = OpenAI(base_url=args.llm.rstrip("/") + "/v1", api_key="test-key", max_retries=0)
    return provider, provider.get_tracer("support-bot"), client


def run_calls(args: argparse.Namespace) -> list[dict[str, Any]]:
    from opentelemetry.trace import Status, StatusCode

    provider, tracer, client = _setup(args)
    truth = []
    for question in json.loads(Path(args.questions).read_text()):
        with tracer.start_as_current_span("answer-question") as root:
            answer = _ask(client, question)
            if "[fail]" in question:
                root.set_status(Status(StatusCode.ERROR, "the answer was refused"))
            context = root.get_span_context()
        truth.append({"trace_id": format(context.trace_id, "032x"),
                      "root_span_id": format(context.span_id, "016x"),
                      "question": question, "answer": answer, "error": "[fail]" in question})
    provider.shutdown()
    return truth


def run_batches(args: argparse.Namespace) -> list[dict[str, Any]]:
    provider, tracer, client = _setup(args)
    questions = ["First part: what is the order status?", "Second part: when will it arrive?"]
    answers, sent_at = [], []
    with tracer.start_as_current_span("multi-step-request") as root:
        for question in questions:  # each call's span is exported when it ends
            answers.append(_ask(client, question))
            sent_at.append(time.time())
            time.sleep(args.gap)
        context = root.get_span_context()
    sent_at.append(time.time())
    provider.shutdown()
    return [{"trace_id": format(context.trace_id, "032x"),
             "root_span_id": format(context.span_id, "016x"),
             "questions": questions, "answers": answers, "sent_at": sent_at}]


def run_late(args: argparse.Namespace) -> list[dict[str, Any]]:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    provider, tracer, client = _setup(args)
    parent = SpanContext(int(args.trace_id, 16), int(args.parent_span_id, 16), is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(parent)):
        answer = _ask(client, args.question)
    provider.shutdown()
    return [{"trace_id": args.trace_id, "question": args.question, "answer": answer}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["calls", "batches", "late"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--llm", required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--questions", type=Path)
    parser.add_argument("--encoding", choices=["protobuf", "json"], default="protobuf")
    parser.add_argument("--acked", type=Path)
    parser.add_argument("--gap", type=float, default=1.5)
    parser.add_argument("--trace-id")
    parser.add_argument("--parent-span-id")
    parser.add_argument("--question")
    args = parser.parse_args()
    run = {"calls": run_calls, "batches": run_batches, "late": run_late}[args.mode]
    args.truth.write_text(json.dumps(run(args), indent=1))


if __name__ == "__main__":
    main()
