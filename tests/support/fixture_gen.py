"""What the fixture generators in ``tests/fixtures/<dialect>/generate.py`` share.

Each generator runs a real SDK or instrumentation against :mod:`tests.support.fake_providers`
inside a throwaway virtualenv (``.venvs-gen/``, not part of the project), then writes

* ``trace.otlp.jsonl``: what the OpenTelemetry SDK exported, encoded by the OTLP exporter's
  own encoder (one ``ExportTraceServiceRequest`` line, and one ``ExportLogsServiceRequest``
  line when the instrumentation logs events), as protobuf JSON;
* ``truth.json``: per trace, what the script sent and what the fake provider is scripted to
  return (system prompt, messages, tool calls with arguments and results, answer, model,
  tokens, error), built from the script's own inputs and the server's constants, never
  from the spans.

Run from the repository root: ``.venvs-gen/bin/python tests/fixtures/<dialect>/generate.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.fake_providers import ANSWER, TOOL_ARGUMENTS, USAGE

SYSTEM = "You are a terse weather assistant.\n  Answer in English only."
QUESTION = "What's the weather in Paris right now?  (metric, please)"
TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "Current weather for a city."
# a JSON tool result with its own spacing: an importer that re-serializes it is caught
TOOL_RESULT = '{"temp_c": 18,  "sky": "sunny", "note": "°C"}'


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather for a city."""
    return TOOL_RESULT


class Telemetry:
    """An OpenTelemetry tracer and logger provider exporting into memory."""

    def __init__(self, service: str) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.resource = Resource.create({"service.name": service,
                                         "deployment.environment.name": "fixtures"})
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider(resource=self.resource)
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        trace.set_tracer_provider(self.provider)
        self.tracer = trace.get_tracer("fixture-generator")
        self.logs: Any = None
        self.logger_provider: Any = None
        try:
            from opentelemetry._logs import set_logger_provider
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import (
                InMemoryLogRecordExporter,
                SimpleLogRecordProcessor,
            )
        except ImportError:
            return
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        set_logger_provider(self.logger_provider)

    @contextmanager
    def scenario(self, name: str, truth: list[dict[str, Any]], expected: dict[str, Any]
                 ) -> Iterator[None]:
        """A root span around one scenario; its trace id and wall time go into the truth."""
        started = time.monotonic()
        with self.tracer.start_as_current_span(name) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                yield
            except Exception as exc:  # a scripted failure: the SDK raised, as it should
                expected.setdefault("error_raised", type(exc).__name__)
        expected["trace_id"] = trace_id
        expected["wall_ms"] = (time.monotonic() - started) * 1000.0
        truth.append(expected)

    def write(self, folder: Path, truth: list[dict[str, Any]], dialect: str,
              producer: str, protobuf: bool = False) -> None:
        from google.protobuf import json_format
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        self.provider.force_flush()
        requests = [encode_spans(self.spans.get_finished_spans())]
        if self.logs is not None:
            from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

            self.logger_provider.force_flush()
            records = self.logs.get_finished_logs()
            if records:
                requests.append(encode_logs(records))
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "trace.otlp.jsonl").open("w", encoding="utf-8") as out:
            for request in requests:
                out.write(json.dumps(json_format.MessageToDict(request), ensure_ascii=False))
                out.write("\n")
        if protobuf:
            (folder / "trace.spans.pb").write_bytes(requests[0].SerializeToString())
            if len(requests) > 1:
                (folder / "trace.logs.pb").write_bytes(requests[1].SerializeToString())
        (folder / "truth.json").write_text(json.dumps(
            {"dialect": dialect, "producer": producer, "traces": truth}, indent=2,
            ensure_ascii=False) + "\n", encoding="utf-8")


def tool_truth(model: str, tool_call_id: str | None, *, system: str = SYSTEM,
               question: str = QUESTION, answer: str = ANSWER) -> dict[str, Any]:
    """The expected reading of the scripted tool round trip: the last LLM call saw the
    question, its own tool call and the tool's result, and answered."""
    return {
        "system_prompt": system,
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "",
             "tool_calls": [{"id": tool_call_id, "name": TOOL_NAME,
                             "arguments": TOOL_ARGUMENTS, "result": TOOL_RESULT}]},
            {"role": "tool", "content": TOOL_RESULT, "tool_call_id": tool_call_id},
        ],
        "output": answer,
        "model": model,
        "input_tokens": sum(u[0] for u in USAGE),
        "output_tokens": sum(u[1] for u in USAGE),
        "error": None,
    }


def simple_truth(model: str, *, system: str = SYSTEM, question: str = QUESTION
                 ) -> dict[str, Any]:
    """The expected reading of a single call without tools."""
    return {"system_prompt": system, "messages": [{"role": "user", "content": question}],
            "output": ANSWER, "model": model, "input_tokens": USAGE[0][0],
            "output_tokens": USAGE[0][1], "error": None}


def failure_truth(model: str, question: str) -> dict[str, Any]:
    """A call the provider failed (HTTP 500): the question is kept, the error is set."""
    return {"system_prompt": SYSTEM, "messages": [{"role": "user", "content": question}],
            "output": "", "model": model, "input_tokens": None, "output_tokens": None,
            "error": "any"}


def run_node(folder: Path, sent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run a Node generator (``generate.mjs`` in ``folder``) with ``sent`` as JSON on stdin;
    it writes the OTLP/JSON file itself and prints one ``{name, trace_id, wall_ms[,
    error_raised]}`` line per scenario, returned by name."""
    import subprocess

    run = subprocess.run(["node", "generate.mjs"], cwd=folder, input=json.dumps(sent),
                         capture_output=True, text=True, check=True)
    return {row["name"]: row for row in map(json.loads, run.stdout.splitlines())}


def finish(rows: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]],
           **common: Any) -> list[dict[str, Any]]:
    """The truth per scenario, with the trace id, wall time and raised error Node reported."""
    truth = []
    for name, want in expected.items():
        row = rows[name]
        want.update(trace_id=row["trace_id"], wall_ms=row["wall_ms"], **common)
        if "error_raised" in row:
            want["error_raised"] = row["error_raised"]
        truth.append(want)
    return truth


def write_truth(folder: Path, truth: list[dict[str, Any]], dialect: str, producer: str) -> None:
    (folder / "truth.json").write_text(json.dumps(
        {"dialect": dialect, "producer": producer, "traces": truth}, indent=2,
        ensure_ascii=False) + "\n", encoding="utf-8")
