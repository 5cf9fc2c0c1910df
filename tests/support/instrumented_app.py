"""A tiny LLM app instrumented for real, run in a tool's own virtualenv by the connector
tests: OpenAI chat calls against the local fake provider, traced by a real
instrumentation and exported by the real OTLP/HTTP exporter.

    python instrumented_app.py --instrumentation openinference --endpoint URL \
        --llm URL --project P --questions q.json --truth out.json

``--instrumentation openinference`` (Phoenix's own, ``openinference-instrumentation-openai``)
exports to ``--endpoint``/v1/traces with the ``openinference.project.name`` resource
attribute; ``mlflow`` uses MLflow's OpenAI autologging into experiment ``--project``.
The ground truth written to ``--truth`` is what was sent and what came back, per call,
with the trace id the SDK assigned (never read from the exported spans).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SYSTEM = "Answer in one short sentence."


def _ask(client: Any, question: str) -> str:
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
    return str(answer.choices[0].message.content)


def run_openinference(args: argparse.Namespace, questions: list[str]) -> list[dict[str, Any]]:
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"openinference.project.name": args.project}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=args.endpoint.rstrip("/") + "/v1/traces")))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("instrumented-app")
    client = OpenAI(base_url=args.llm.rstrip("/") + "/v1", api_key="test-key")
    truth = []
    for question in questions:
        # the app's own root span, so the trace id is known from the SDK, not the export
        with tracer.start_as_current_span("answer-question") as root:
            answer = _ask(client, question)
            context = root.get_span_context()
        truth.append({"trace_id": format(context.trace_id, "032x"),
                      "root_span_id": format(context.span_id, "016x"),
                      "system": SYSTEM, "question": question, "answer": answer})
    provider.shutdown()
    del trace
    return truth


def run_mlflow(args: argparse.Namespace, questions: list[str]) -> list[dict[str, Any]]:
    import os

    # MLflow logs a trace's info and its spans in separate requests; from a background
    # queue, a span request lost at exit or under load is only logged at DEBUG, leaving
    # a trace without spans. Logged synchronously, each trace is whole when the call ends.
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    import mlflow
    from openai import OpenAI

    mlflow.set_tracking_uri(args.endpoint)
    mlflow.set_experiment(args.project)
    mlflow.openai.autolog()
    client = OpenAI(base_url=args.llm.rstrip("/") + "/v1", api_key="test-key")
    truth = []
    for question in questions:
        answer = _ask(client, question)
        trace_id = mlflow.get_last_active_trace_id()
        truth.append({"trace_id": trace_id, "system": SYSTEM, "question": question,
                      "answer": answer})
    mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
    return truth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instrumentation", choices=["openinference", "mlflow"],
                        required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--llm", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text())
    run = run_openinference if args.instrumentation == "openinference" else run_mlflow
    args.truth.write_text(json.dumps(run(args, questions), indent=1))


if __name__ == "__main__":
    main()
