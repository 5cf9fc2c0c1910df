"""OTLP requests made by the real OpenTelemetry SDK (spans and GenAI log events), for the
receiver's tests and its benchmark.

Each trace is an app's root span around one chat call span; the call's messages travel
as a ``gen_ai.client.inference.operation.details`` log record (how the GenAI
instrumentations log content) when ``logs`` is on, else as span attributes. The ground
truth is what the script put in, never read back from the export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Produced:
    traces: Any  # ExportTraceServiceRequest
    logs: Any  # ExportLogsServiceRequest (None: no log records)
    truth: list[dict[str, Any]] = field(default_factory=list)


def sdk_requests(count: int = 3, logs: bool = True, prefix: str = "question") -> Produced:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": "support-bot"})
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    records = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    tracer = provider.get_tracer("collect-tests")
    logger = logger_provider.get_logger("collect-tests")
    truth = []
    for i in range(count):
        question, answer = f"{prefix} {i}: where is my order?", f"answer {i}: it has shipped."
        inputs = json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}])
        outputs = json.dumps([{"role": "assistant", "finish_reason": "stop",
                               "parts": [{"type": "text", "content": answer}]}])
        with tracer.start_as_current_span("handle-request") as root:
            attrs: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                     "gen_ai.request.model": "gpt-4o-mini",
                                     "gen_ai.usage.input_tokens": 12,
                                     "gen_ai.usage.output_tokens": 7}
            if not logs:
                attrs.update({"gen_ai.input.messages": inputs,
                              "gen_ai.output.messages": outputs})
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attrs):
                if logs:
                    logger.emit(event_name="gen_ai.client.inference.operation.details",
                                attributes={"gen_ai.input.messages": inputs,
                                            "gen_ai.output.messages": outputs})
            context = root.get_span_context()
        truth.append({"trace_id": format(context.trace_id, "032x"), "question": question,
                      "answer": answer})
    provider.force_flush()
    logger_provider.force_flush()
    finished = records.get_finished_logs()
    return Produced(encode_spans(spans.get_finished_spans()),
                    encode_logs(finished) if finished else None, truth)


def to_otlp_json(message: Any) -> bytes:
    """OTLP/JSON as the Collector sends it: protobuf's JSON mapping with the trace and
    span ids in hex (the OTLP/JSON rule) instead of base64."""
    import base64

    from google.protobuf import json_format

    def hexify(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                        and isinstance(v, str) else hexify(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [hexify(v) for v in value]
        return value

    return json.dumps(hexify(json_format.MessageToDict(message))).encode()
