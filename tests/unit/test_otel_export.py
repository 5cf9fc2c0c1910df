"""``push otel``: records out as ``gen_ai.evaluation.result`` OTLP log events, on both
store engines. The traces are the openinference-openai fixture (a real instrumentation
against the local fake provider); the receiver is a test receiver that decodes the export
with ``opentelemetry-proto`` (not a stand-in for a product)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.otlp_log_receiver import OtlpLogReceiver

from ls_llmtrace.cli import main
from ls_llmtrace.connectors.common import root_span_id
from ls_llmtrace.connectors.otel import (
    EVENT,
    OtlpLogSender,
    event_for,
    export_request,
    logs_url,
    otel_id,
    push,
)
from ls_llmtrace.errors import ConnectorError
from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.store import Store

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "openinference-openai" \
    / "trace.otlp.jsonl"
WHEN = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _traces() -> list[Trace]:
    return [t for t in read_any(FIXTURE, "otlp") if isinstance(t, Trace)][:3]


def _record(key: str, trace: Trace, source: Source = Source.reviewer, **kw: object
            ) -> AnnotationRecord:
    fields: dict[str, object] = {
        "record_key": key, "trace_id": trace.trace_id, "schema_id": "default",
        "schema_version": 1, "source": source, "label": "fail", "score": 0.25,
        "explanation": "Wrong city.", "author": "rev@example.com", "created_at": WHEN,
        "updated_at": WHEN, **kw}
    return AnnotationRecord.model_validate(fields)


def _fill(store: Store) -> list[Trace]:
    traces = _traces()
    store.upsert_traces(traces)
    span = traces[1].spans[-1].span_id
    records = [
        _record("r1", traces[0]),
        _record("r2", traces[1], scope=Scope(kind="span", span_id=span), label="pass",
                score=None, explanation=None),
        _record("f1", traces[2], Source.end_user, label="thumbs_down", score=0.0,
                feedback_name="thumbs", explanation=None, author=None),
        _record("cancelled", traces[2], was_cancelled=True),
        _record("judge", traces[2], Source.judge),
    ]
    with store.transaction() as conn:
        Store.upsert_records(conn, records)
    return traces


def _attrs(record: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in record.attributes:  # type: ignore[attr-defined]
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_events_follow_the_genai_convention(store: Store) -> None:
    traces = _fill(store)
    with OtlpLogReceiver() as receiver:
        summary = push(OtlpLogSender(receiver.url), store)
        assert (summary.sent, summary.unchanged, summary.rejected) == (3, 0, 0)
        assert summary.skipped == {"skipped or deleted annotations": 1}
        assert receiver.content_types == ["application/x-protobuf"]
        [request] = receiver.requests
        [resource] = request.resource_logs
        assert {kv.key: kv.value.string_value for kv in resource.resource.attributes} == {
            "service.name": "ls-llmtrace"}
        records = {_attrs(r)["ls_llmtrace.record_key"]: r for r in receiver.records()}
    assert set(records) == {"r1", "r2", "f1"}  # the judge's and the cancelled one are not
    r1, r2, f1 = records["r1"], records["r2"], records["f1"]
    assert all(r.event_name == EVENT for r in (r1, r2, f1))
    assert bytes(r1.trace_id).hex() == traces[0].trace_id
    assert bytes(r1.span_id).hex() == root_span_id(traces[0])
    assert bytes(r2.span_id).hex() == traces[1].spans[-1].span_id  # the span judged
    assert r1.time_unix_nano == int(WHEN.timestamp() * 1e9)
    a1 = _attrs(r1)
    assert a1["gen_ai.evaluation.name"] == "default"
    assert a1["gen_ai.evaluation.score.label"] == "fail"
    assert a1["gen_ai.evaluation.score.value"] == 0.25
    assert a1["gen_ai.evaluation.explanation"] == "Wrong city."
    assert a1["ls_llmtrace.source"] == "reviewer" and a1["ls_llmtrace.author"] == \
        "rev@example.com"
    a2 = _attrs(r2)
    assert "gen_ai.evaluation.score.value" not in a2 and "gen_ai.evaluation.explanation" \
        not in a2
    a3 = _attrs(f1)
    assert a3["gen_ai.evaluation.name"] == "thumbs" and a3["ls_llmtrace.source"] == "end_user"
    assert len({_attrs(r)["log.record.uid"] for r in (r1, r2, f1)}) == 3


def test_second_push_sends_nothing_and_a_change_gets_a_new_uid(store: Store) -> None:
    traces = _fill(store)
    with OtlpLogReceiver() as receiver:
        push(OtlpLogSender(receiver.url), store)
        first = {_attrs(r)["ls_llmtrace.record_key"]: _attrs(r)["log.record.uid"]
                 for r in receiver.records()}
        again = push(OtlpLogSender(receiver.url), store)
        assert (again.sent, again.unchanged) == (0, 3)
        assert len(receiver.requests) == 1
        with store.transaction() as conn:
            Store.upsert_record(conn, _record("r1", traces[0], label="pass", score=0.9))
        changed = push(OtlpLogSender(receiver.url), store)
        assert (changed.sent, changed.unchanged) == (1, 2)
        new_uid = _attrs(receiver.records()[-1])["log.record.uid"]
        assert new_uid != first["r1"]
        resent = push(OtlpLogSender(receiver.url), store, resend=True)
        assert resent.sent == 3  # --all: everything again, under the same uids
        uids = {_attrs(r)["ls_llmtrace.record_key"]: _attrs(r)["log.record.uid"]
                for r in receiver.records()[-3:]}
    assert uids == {**first, "r1": new_uid}


def test_busy_receiver_is_retried_and_partial_success_is_counted(store: Store) -> None:
    _fill(store)
    with OtlpLogReceiver() as receiver:
        receiver.busy = 2  # two 503 answers with Retry-After: 0, then it accepts
        receiver.reject = 1
        summary = push(OtlpLogSender(receiver.url), store)
        assert len(receiver.requests) == 1
    assert summary.sent == 3 and summary.rejected == 1
    assert "the receiver rejected 1" in summary.line("otel")


def test_unreachable_endpoint_is_one_line_exit_7(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    _fill(store)
    store.close()
    result = CliRunner().invoke(main, ["push", "otel", "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 7
    assert "OTLP endpoint http://127.0.0.1:9/v1/logs could not be reached" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(ConnectorError):
        OtlpLogSender("http://127.0.0.1:9").send(export_request([]))


def test_ids() -> None:
    hex32 = "402b3bc1e3ee840c13ece3dee25a2063"
    assert otel_id(hex32, 16) == bytes.fromhex(hex32)
    assert otel_id(f"tr-{hex32}", 16) == bytes.fromhex(hex32)  # MLflow's trace ids
    assert otel_id("trace-7", 16) is None and otel_id("0" * 32, 16) is None
    assert otel_id(None, 8) is None
    assert logs_url("http://h:4318") == "http://h:4318/v1/logs"
    assert logs_url("http://h:4318/v1/logs/") == "http://h:4318/v1/logs"


def test_trace_without_otel_id_is_sent_unlinked() -> None:
    trace = Trace(trace_id="conv-42", output="x")
    event = event_for(_record("k", trace), trace)
    assert event.trace_id is None and event.span_id is None
    assert event.attributes["ls_llmtrace.trace_id"] == "conv-42"
    assert not event.log_record(0).trace_id


def test_push_state_is_kept_per_endpoint_and_can_be_forgotten(store: Store) -> None:
    """The connector state the pushes share, on both engines: per (system, scope)."""
    store.remember_push("otel", "http://a/v1/logs", "k", "uid-1", "h1")
    store.remember_push("otel", "http://a/v1/logs", "k", "uid-2", "h2")  # an update
    store.remember_push("otel", "http://b/v1/logs", "k", "uid-3", "h3")
    a = store.pushed_items("otel", "http://a/v1/logs")
    assert {k: (v.remote_id, v.content_hash) for k, v in a.items()} == {"k": ("uid-2", "h2")}
    store.forget_push("otel", "http://a/v1/logs", "k")
    assert store.pushed_items("otel", "http://a/v1/logs") == {}
    assert set(store.pushed_items("otel", "http://b/v1/logs")) == {"k"}
