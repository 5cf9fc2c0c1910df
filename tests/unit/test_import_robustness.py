"""Bad input never stops a file: property tests (hypothesis) on every importer, format
detection and the dialect layer, bounded memory on adversarial nesting, record size caps,
binary OTLP, and the import command's exit codes."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ls_llmtrace.cli import main
from ls_llmtrace.errors import InputError
from ls_llmtrace.ingest.importers import FORMATS, Rejected, detect_format, read_any
from ls_llmtrace.ingest.importers.common import RECORD_ERRORS
from ls_llmtrace.ingest.importers.dialects import read_messages, reading
from ls_llmtrace.ingest.importers.spans import SpanView, build_trace
from ls_llmtrace.models import Trace

from .paths import FIXTURES

EXAMPLES = 150  # inputs per property test: 1,200 in all (4 importers, detection, spans,
# and twice that for the dialect layer)
PROFILE = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),  # includes lone surrogates
    st.sampled_from(["", "None", "2024-13-45T99:99:99Z", "-1", "1e400", "user", "assistant",
                     "GENERATION", "TOOL", "llm", "tool", "AAAAAAAAAAAAAAAAAAAAAA==",
                     "system: a\nuser: b", "[{'role': 'user', 'content': 'x'}]",
                     '{"role": "user"}', "0" * 32, "0" * 16, '[{"text": "x"}]',
                     '[{"type": "text", "text": "x"}]', '{"args": [], "kwargs": {}}']),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["role", "content", "type", "parts", "text", "id", "name",
                                     "tool_calls", "function", "arguments", "input",
                                     "output", "messages", "value", "key", "args",
                                     "contents", "candidates", "stringValue",
                                     "kvlistValue", "values", "arrayValue", "system",
                                     "instructions", "prompts", "config", "toolUse",
                                     "toolResult", "toolUseId", "json", "reasoningContent",
                                     "message", "choices", "generations"]) | st.text(
        max_size=8), inner, max_size=5)), max_leaves=20)


def _otlp(span: dict[str, Any], attrs: Any, log: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": attrs}, "scopeSpans": [
        {"spans": [span]}]}], "resourceLogs": [{"scopeLogs": [{"logRecords": [log]}]}]}


span_records = st.builds(
    _otlp,
    st.fixed_dictionaries({"traceId": st.one_of(st.just("0af7651916cd43dd8448eb211c80319c"),
                                                values),
                           "spanId": st.one_of(st.just("b7ad6b7169203331"), values),
                           "name": values, "startTimeUnixNano": values,
                           "endTimeUnixNano": values, "status": values, "events": values,
                           "attributes": st.lists(st.fixed_dictionaries(
                               {"key": st.sampled_from(["gen_ai.input.messages",
                                                        "gen_ai.output.messages",
                                                        "input.value", "ai.prompt",
                                                        "gen_ai.usage.input_tokens",
                                                        "llm.input_messages.0.message.role",
                                                        "gen_ai.operation.name"]),
                                "value": values}), max_size=4)}),
    values, st.fixed_dictionaries({"traceId": st.just("0af7651916cd43dd8448eb211c80319c"),
                                   "spanId": st.just("b7ad6b7169203331"), "body": values,
                                   "attributes": values, "eventName": values}))
langfuse_records = st.fixed_dictionaries({
    "trace": st.fixed_dictionaries({"id": values, "input": values, "output": values,
                                    "latency": values, "timestamp": values,
                                    "scores": values, "metadata": values}),
    "observations": st.lists(st.fixed_dictionaries({
        "id": values, "type": st.sampled_from(["GENERATION", "TOOL", "RETRIEVER", "SPAN"]),
        "input": values, "output": values, "startTime": values, "endTime": values,
        "usageDetails": values, "costDetails": values, "level": values,
        "modelParameters": values}), max_size=3)})
langsmith_records = st.fixed_dictionaries({
    "id": values, "trace_id": st.one_of(st.just("r1"), values),
    "run_type": st.sampled_from(["llm", "tool", "retriever", "chain"]), "inputs": values,
    "outputs": values, "start_time": values, "end_time": values, "error": values,
    "extra": values, "parent_run_id": values, "dotted_order": values, "feedback": values})
native_records = st.fixed_dictionaries({"trace_id": values, "messages": values,
                                        "output": values, "metadata": values})
RECORDS = {"otlp": span_records, "langfuse": langfuse_records,
           "langsmith": langsmith_records, "native": native_records}


def _write(path: Path, records: list[Any], layout: str) -> None:
    texts = [json.dumps(r, allow_nan=True) for r in records]
    if layout == "lines":
        path.write_text("\n".join(texts) + "\n", encoding="utf-8", errors="surrogatepass")
    else:
        path.write_text("[\n" + ",\n".join(texts) + "\n]", encoding="utf-8",
                        errors="surrogatepass")


def _only_traces_and_rejects(items: Any) -> tuple[int, int]:
    traces = rejects = 0
    for item in items:
        if isinstance(item, Trace):
            traces += 1
        else:
            assert isinstance(item, list) and item
            assert all(isinstance(r, Rejected) and r.reason for r in item)
            rejects += 1
    return traces, rejects


@pytest.mark.parametrize("fmt", sorted(RECORDS))
def test_every_importer_only_yields_traces_and_rejects(fmt: str, tmp_path: Path) -> None:
    @PROFILE
    @given(st.lists(RECORDS[fmt], min_size=1, max_size=3), st.sampled_from(["lines", "array"]),
           st.binary(max_size=40))
    def check(records: list[Any], layout: str, junk: bytes) -> None:
        path = tmp_path / f"in.{fmt}.json"
        _write(path, records, layout)
        if layout == "lines":  # and a line of random bytes (invalid UTF-8 and all)
            with path.open("ab") as handle:
                handle.write(junk.replace(b"\n", b" ") + b"\n")
        _only_traces_and_rejects(FORMATS[fmt](path))
        try:
            detected = detect_format(path)
        except InputError:
            return
        _only_traces_and_rejects(read_any(path, detected))

    check()


@settings(PROFILE, max_examples=2 * EXAMPLES)  # pure and quick: twice the inputs
@given(values)
def test_the_dialect_layer_reads_anything_without_raising(value: Any) -> None:
    with reading() as read:
        for role in ("user", "assistant"):
            messages = read_messages(value, role)
            assert all(isinstance(m.content, str) for m in messages)
    assert all(isinstance(snippet, str) for _, snippet in read.unread)


SPAN_KEYS = ["gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "gen_ai.completion.0.content",
             "gen_ai.completion.0.tool_calls.0.name", "gen_ai.prompt", "gen_ai.completion",
             "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
             "llm.request.type", "traceloop.span.kind", "traceloop.entity.name",
             "traceloop.entity.input", "traceloop.entity.output", "request_data",
             "response_data", "ai.prompt", "ai.response.toolCalls", "input.value",
             "output.value", "gen_ai.operation.name", "gen_ai.response.prompt_tokens",
             "gen_ai.usage.input_tokens", "gen_ai.tool.name", "metadata"]
EVENT_NAMES = ["gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.user.message",
               "gen_ai.system.message", "gen_ai.tool.message", "gen_ai.choice",
               "gen_ai.client.inference.operation.details", "gen_ai.evaluation.result"]
light = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["role", "content", "parts", "type", "text", "toolUse", "message",
                     "messages", "tool_calls", "name", "id"]), inner, max_size=3),
    max_leaves=8)
spans_views = st.lists(st.builds(
    lambda n, attrs, events: SpanView(trace_id="t" * 32, span_id=f"{n:016x}",
                                      parent_span_id=None if n == 0 else f"{0:016x}",
                                      attributes=attrs, events=events),
    st.integers(min_value=0, max_value=3),
    st.dictionaries(st.sampled_from(SPAN_KEYS), light, max_size=4),
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(EVENT_NAMES), "time": st.none(),
                                    "attributes": st.dictionaries(st.sampled_from(
                                        ["content", "message", "role", "id", "gen_ai.prompt",
                                         "gen_ai.completion", "gen_ai.input.messages",
                                         "gen_ai.output.messages"]), light, max_size=3)}),
             max_size=2)), min_size=1, max_size=3)


@PROFILE
@given(spans_views)
def test_spans_in_any_convention_build_a_trace_or_a_reject(spans: list[SpanView]) -> None:
    """What the OTLP reader does with a trace's spans (its rejects: a ValidationError or
    one of RECORD_ERRORS); nothing else may escape."""
    try:
        trace = build_trace("t" * 32, spans, "otlp")
    except (ValidationError, *RECORD_ERRORS):
        return
    assert isinstance(trace, Trace)
    assert all(isinstance(m.content, str) for m in trace.messages)


@PROFILE
@given(st.binary(max_size=200))
def test_detection_and_reading_of_random_bytes(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.bin"
        path.write_bytes(data)
        try:
            fmt = detect_format(path)
        except InputError:
            return
        _only_traces_and_rejects(read_any(path, fmt))


def _peak_mb(fn: Any) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", ["array", "object", "lines"])
def test_deep_nesting_is_a_reject_with_flat_memory(shape: str, tmp_path: Path) -> None:
    deep = "[" * 40000 + "]" * 40000  # 80 KB: this took 4 GB before the depth cap
    text = {"array": f'[{deep}, {{"trace": {{"id": "ok"}}, "observations": []}}]',
            "object": f'{{"resourceSpans": [{deep}]}}',
            "lines": f'{{"trace_id": "deep", "metadata": {deep}}}\n{{"trace_id": "ok"}}\n'}[shape]
    path = tmp_path / "deep.json"
    path.write_text(text)
    out: list[Any] = []
    fmt = {"array": "langfuse", "object": "otlp", "lines": "native"}[shape]
    peak = _peak_mb(lambda: out.extend(read_any(path, fmt)))
    rejects = [r for item in out if isinstance(item, list) for r in item]
    assert any("LS_LLMTRACE_MAX_DEPTH" in r.reason for r in rejects)
    if shape != "object":
        assert [t.trace_id for t in out if isinstance(t, Trace)] == ["ok"]
    assert peak < 50, f"{peak:.0f} MB"


def test_an_oversized_line_is_rejected_and_the_next_one_read(tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_MAX_RECORD_BYTES", "2048")
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"trace_id": "big", "output": "x" * 5000}) + "\n"
                    + json.dumps({"trace_id": "small"}) + "\n")
    for fmt in ("native", None):
        items = list(read_any(path, fmt))
        assert [t.trace_id for t in items if isinstance(t, Trace)] == ["small"]
        [[reject]] = [i for i in items if isinstance(i, list)]
        assert reject.location == "line 1" and "LS_LLMTRACE_MAX_RECORD_BYTES" in reject.reason


def test_detection_skips_bad_records_before_the_first_good_one(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("{not json\n" + json.dumps({"trace_id": "t1"}) + "\n")
    assert detect_format(path) == "native"
    items = list(read_any(path))
    assert [t.trace_id for t in items if isinstance(t, Trace)] == ["t1"]


def test_protobuf_spans_with_logs_in_a_separate_file() -> None:
    folder = FIXTURES / "genai-openai-v2"
    assert detect_format(folder / "trace.spans.pb") == "otlp"
    from_pb = {t.trace_id: t for t in read_any(folder / "trace.spans.pb",
                                               logs=[folder / "trace.logs.pb"])
               if isinstance(t, Trace)}
    from_json = {t.trace_id: t for t in read_any(folder / "trace.otlp.jsonl")
                 if isinstance(t, Trace)}
    assert len(from_pb) == 3 and from_pb.keys() == from_json.keys()
    for trace_id, trace in from_json.items():
        assert from_pb[trace_id].messages == trace.messages
        assert from_pb[trace_id].output == trace.output
        assert from_pb[trace_id].system_prompt == trace.system_prompt


def test_spans_without_their_log_file_say_so(tmp_path: Path) -> None:
    folder = FIXTURES / "genai-openai-v2"
    items = list(read_any(folder / "trace.logs.pb"))
    assert not [t for t in items if isinstance(t, Trace)]
    [reject] = [r for i in items if isinstance(i, list) for r in i]
    assert "not in the export" in reject.reason


def test_import_cli_dry_run_explain_strict_and_wrong_format(tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    # nothing here may reach Label Studio: a closed port would make any call fail (exit 3)
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", "http://127.0.0.1:9")
    runner = CliRunner()
    good = FIXTURES / "openinference-anthropic" / "trace.otlp.jsonl"
    result = runner.invoke(main, ["import", str(good), "--explain"])
    assert result.exit_code == 0, result.output
    assert "read as anthropic" in result.output and result.output.count("trace ") == 3
    result = runner.invoke(main, ["import", str(good), "--dry-run"])
    assert result.exit_code == 0 and "would import 3" in result.output
    langfuse = next((FIXTURES / "langfuse-traces").glob("*.trace.json"))
    result = runner.invoke(main, ["import", str(langfuse), "--format", "native", "--dry-run"])
    assert result.exit_code == 4
    assert "it looks like langfuse: try --format langfuse" in result.output
    assert "more rejected" in result.output  # the first few, then a count
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"trace_id": "t1"}) + "\n{broken\n")
    result = runner.invoke(main, ["import", str(mixed), "--strict"])
    assert result.exit_code == 4, result.output
    assert "nothing imported" in result.output
