"""The OTLP/HTTP receiver's surface (our own Flask app, through its test client): status
codes, both encodings, gzip, auth, limits, backpressure; and what the spool keeps.

The requests are made by the real OpenTelemetry SDK and its OTLP encoder."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tests.support.otlp_payloads import Produced, sdk_requests, to_otlp_json

from ls_llmtrace.collect.receiver import create_app
from ls_llmtrace.collect.server import CollectOptions, check
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.store import Store

TOKEN = "s3cret-collect-token"
PB = "application/x-protobuf"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


@pytest.fixture
def http(store_url: str) -> FlaskClient:
    return create_app(store_url, token=TOKEN, busy_timeout=0.3).test_client()


@pytest.fixture(scope="module")
def produced() -> Produced:
    return sdk_requests(3)


def _post(http: FlaskClient, body: bytes, kind: str = PB, path: str = "/v1/traces",
          headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return http.post(path, data=body, headers={**AUTH, "Content-Type": kind,
                                               **(headers or {})})


def _counts(store_url: str) -> dict[str, int]:
    with Store(store_url) as store:
        return store.collect_counts()


def test_protobuf_spans_are_spooled_and_answered_in_protobuf(
        http: FlaskClient, produced: Produced, store_url: str) -> None:
    answer = _post(http, produced.traces.SerializeToString())
    assert answer.status_code == 200 and answer.content_type == PB
    parsed = ExportTraceServiceResponse.FromString(answer.data)
    assert not parsed.HasField("partial_success")
    counts = _counts(store_url)
    assert counts["items"] == 6 and counts["traces"] == 3 and counts["rejects"] == 0
    # the exporter retries a request it got no answer to: nothing is added twice
    assert _post(http, produced.traces.SerializeToString()).status_code == 200
    assert _counts(store_url)["items"] == 6


def test_otlp_json_with_hex_ids_and_gzip(http: FlaskClient, produced: Produced,
                                         store_url: str) -> None:
    answer = _post(http, gzip.compress(to_otlp_json(produced.traces)), "application/json",
                   headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.content_type == "application/json"
    assert answer.get_json() == {}
    logs = _post(http, produced.logs.SerializeToString(), path="/v1/logs")
    assert logs.status_code == 200
    assert not ExportLogsServiceResponse.FromString(logs.data).HasField("partial_success")
    with Store(store_url) as store:
        kinds = [kind for _, kind, _ in store.spooled(produced.truth[0]["trace_id"])]
    assert sorted(kinds) == ["log", "span", "span"]


def test_bad_spans_get_partial_success_and_are_kept_with_the_reason(
        http: FlaskClient, produced: Produced, store_url: str) -> None:
    envelope = json.loads(to_otlp_json(produced.traces))
    spans = envelope["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["spanId"] = "not-an-id"
    answer = _post(http, json.dumps(envelope).encode(), "application/json")
    assert answer.status_code == 200
    partial = answer.get_json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 is a string in protobuf's JSON
    assert "resourceSpans.0.scopeSpans.0.spans.1.spanId" in partial["errorMessage"]
    with Store(store_url) as store:
        counts = store.collect_counts()
        [reject] = store.collect_rejects()
    assert counts["items"] == 5 and counts["rejects"] == 1
    assert reject["field"] == "spanId" and "not-an-id" in reject["reason"]


def test_log_records_without_a_span_are_refused_in_partial_success(
        http: FlaskClient, produced: Produced) -> None:
    request = type(produced.logs)()
    request.CopyFrom(produced.logs)
    request.resource_logs[0].scope_logs[0].log_records[0].ClearField("span_id")
    answer = _post(http, request.SerializeToString(), path="/v1/logs")
    assert answer.status_code == 200
    partial = ExportLogsServiceResponse.FromString(answer.data).partial_success
    assert partial.rejected_log_records == 1 and "spanId" in partial.error_message


@pytest.mark.parametrize(("body", "kind", "headers", "code"), [
    (b"\xff\xff\xff\xff", PB, {}, 400),  # not a protobuf message
    (b"{not json", "application/json", {}, 400),
    (b"[1, 2]", "application/json", {}, 400),
    (b"\x1f\x8b\x08\x00garbage", PB, {"Content-Encoding": "gzip"}, 400),
    (b"{}", "text/plain", {}, 415),
    (b"{}", "application/json", {"Content-Encoding": "br"}, 415),
])
def test_unreadable_requests(http: FlaskClient, body: bytes, kind: str,
                             headers: dict[str, str], code: int, store_url: str) -> None:
    answer = _post(http, body, kind, headers=headers)
    assert answer.status_code == code
    assert _counts(store_url)["items"] == 0
    if kind == PB:  # the error is a google.rpc.Status in the request's encoding
        assert answer.content_type == PB and answer.data[:1] == b"\x08"
    else:
        assert answer.get_json()["message"]


def test_auth_is_required_and_checked(http: FlaskClient, produced: Produced,
                                      store_url: str) -> None:
    body = produced.traces.SerializeToString()
    missing = http.post("/v1/traces", data=body, headers={"Content-Type": PB})
    wrong = http.post("/v1/traces", data=body, headers={"Content-Type": PB,
                                                       "Authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert _counts(store_url)["items"] == 0
    assert http.get("/health").status_code == 200


def test_closed_by_default(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LS_LLMTRACE_COLLECT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="LS_LLMTRACE_COLLECT_TOKEN"):
        create_app(store_url)
    with pytest.raises(ConfigError, match="LS_LLMTRACE_COLLECT_TOKEN"):
        check(CollectOptions())
    with pytest.raises(ConfigError, match="loopback only"):
        check(CollectOptions(host="0.0.0.0", no_auth=True))
    check(CollectOptions(no_auth=True))  # loopback without a token: allowed when asked
    open_app = create_app(store_url, no_auth=True).test_client()
    assert open_app.post("/v1/traces", data=b"", headers={"Content-Type": PB}
                         ).status_code == 200


def test_body_limits_plain_and_gzipped(http: FlaskClient, produced: Produced,
                                       monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    body = produced.traces.SerializeToString()
    monkeypatch.setenv("LS_LLMTRACE_COLLECT_MAX_BODY_MB", str(len(body) / 2 / 1024 / 1024))
    assert _post(http, body).status_code == 413
    # small on the wire, too large once gunzipped
    bomb = gzip.compress(b"\x00" * (len(body) * 4))
    assert len(bomb) < len(body) / 2
    assert _post(http, bomb, headers={"Content-Encoding": "gzip"}).status_code == 413
    assert _counts(store_url)["items"] == 0


def test_a_full_buffer_answers_429_with_retry_after(
        http: FlaskClient, produced: Produced, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_COLLECT_MAX_PENDING", "6")
    monkeypatch.setenv("LS_LLMTRACE_COLLECT_RETRY_AFTER_S", "7")
    assert _post(http, produced.traces.SerializeToString()).status_code == 200
    full = _post(http, produced.traces.SerializeToString())
    assert full.status_code == 429 and full.headers["Retry-After"] == "7"


def test_a_busy_store_answers_503_and_keeps_nothing_half(
        http: FlaskClient, produced: Produced, store_url: str) -> None:
    assert http.get("/health").status_code == 200
    _counts(store_url)  # the store exists and is migrated
    blocker = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        busy = _post(http, produced.traces.SerializeToString())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    assert _counts(store_url)["items"] == 0
    assert _post(http, produced.traces.SerializeToString()).status_code == 200
    assert _counts(store_url)["items"] == 6


def test_snake_case_json_is_read_too(http: FlaskClient, produced: Produced,
                                     store_url: str) -> None:
    def snake(value):  # type: ignore[no-untyped-def]
        import re
        if isinstance(value, dict):
            return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): snake(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [snake(v) for v in value]
        return value

    body = json.dumps(snake(json.loads(to_otlp_json(produced.traces)))).encode()
    assert b"resource_spans" in body and b"trace_id" in body
    assert _post(http, body, "application/json").status_code == 200
    assert _counts(store_url)["items"] == 6


def test_an_empty_request_is_a_success(http: FlaskClient) -> None:
    answer = _post(http, ExportTraceServiceRequest().SerializeToString())
    assert answer.status_code == 200 and answer.data == b""


def test_cli_refuses_to_start_without_a_token_and_prints_the_spool(
        http: FlaskClient, produced: Produced, store_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ls_llmtrace.cli import main

    monkeypatch.delenv("LS_LLMTRACE_COLLECT_TOKEN", raising=False)
    monkeypatch.setenv("LS_LLMTRACE_DB", store_url)
    refused = CliRunner().invoke(main, ["collect", "--port", "1"])
    assert refused.exit_code == 2 and "LS_LLMTRACE_COLLECT_TOKEN" in refused.output
    envelope = json.loads(to_otlp_json(produced.traces))
    envelope["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "xyz"
    assert _post(http, json.dumps(envelope).encode(), "application/json").status_code == 200
    shown = CliRunner().invoke(main, ["collect", "--status", "--json"])
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert (status["items"], status["traces"], status["rejects"]) == (5, 3, 1)
    assert status["first_rejects"][0]["field"] == "traceId"
