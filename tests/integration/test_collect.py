"""``ls-llmtrace collect`` under its real server (gunicorn), fed by the real OpenTelemetry
SDK, routing into a real Label Studio.

The app (tests/support/collect_app.py, in Phoenix's virtualenv) makes OpenAI calls against
the local fake provider, traced by openinference-instrumentation-openai and exported by
``opentelemetry-exporter-otlp-proto-http`` (protobuf) or as OTLP/JSON built from the same
SDK spans by the exporter's own encoder. The quiet time is 6 s and the settle time 1 s
here (production defaults: 30 s and 2 s), so "spans minutes apart" are seconds apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.fake_llm_server import FakeLLM
from tests.support.tool_servers import PHOENIX_VENV, tool_python

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import free_port
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "support" / "collect_app.py"
TOKEN = "collect-test-token"
SYSTEM = "Answer in one short sentence."
RULES = """
queues:
  - name: live
  - name: live-errors
    triggers: {error: true}
"""


class Collect:
    """``ls-llmtrace collect`` as its own process group (gunicorn arbiter + worker)."""

    def __init__(self, home: Path, args: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.log = home / "collect.log"
        self.env = {**os.environ, "LS_LLMTRACE_COLLECT_TOKEN": TOKEN,
                    "LS_LLMTRACE_COLLECT_QUIET_S": "6", "LS_LLMTRACE_COLLECT_SETTLE_S": "1",
                    "LS_LLMTRACE_COLLECT_POLL_S": "0.2"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ls_llmtrace", "collect", "--port", str(self.port),
                 *self.args], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError("collect did not answer:\n" + self.log.read_text()[-3000:])

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # arbiter and worker: no goodbye
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def collect(ls_env: Path) -> Iterator[Callable[..., Collect]]:
    started: list[Collect] = []

    def start(*args: str) -> Collect:
        server = Collect(ls_env, list(args))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _store(ls_env: Path) -> Store:
    return Store(f"sqlite:///{ls_env / 'store.sqlite'}")


def _app(mode: str, server: Collect, llm: FakeLLM, tmp: Path, *extra: str,
         background: bool = False) -> Any:
    truth = tmp / f"truth-{mode}-{time.monotonic_ns()}.json"
    command = [tool_python(PHOENIX_VENV), str(APP), mode, "--endpoint", server.url,
               "--token", TOKEN, "--llm", llm.url, "--truth", str(truth), *extra]
    if background:
        return subprocess.Popen(command), truth
    subprocess.run(command, check=True, timeout=180)
    return json.loads(truth.read_text())


def _wait(what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(store: Store, traces: int) -> bool:
    counts = store.collect_counts()
    return counts["traces"] >= traces and counts["traces_waiting"] == 0


def _tasks(ls: LabelStudioClient, store: Store, queue: str) -> list[tuple[int, str]]:
    found = store.queue(queue)
    return [] if found is None else list(ls.task_trace_ids(int(found["project_id"])))


def test_sdk_traces_land_in_their_queues_complete_and_once(
        collect: Callable[..., Collect], ls_client: LabelStudioClient, ls_env: Path) -> None:
    rules = ls_env / "rules.yaml"
    rules.write_text(RULES)
    server = collect("--rules", str(rules))
    protobuf_questions = ["What is the capital of France?",
                          "How many legs does a spider have? [fail]"]
    json_questions = ["Name a prime number above 10.", "What colour is the sky?"]
    with FakeLLM() as llm:
        llm.set_default("Paris is the capital of France.")
        (ls_env / "pb.json").write_text(json.dumps(protobuf_questions))
        (ls_env / "js.json").write_text(json.dumps(json_questions))
        truth = _app("calls", server, llm, ls_env, "--questions", str(ls_env / "pb.json"))
        truth += _app("calls", server, llm, ls_env, "--questions", str(ls_env / "js.json"),
                      "--encoding", "json")
    assert len(truth) == 4
    store = _store(ls_env)
    _wait("the four traces routed", lambda: _settled(store, 4)
          and len(_tasks(ls_client, store, "live")) == 4)
    live = _tasks(ls_client, store, "live")
    assert sorted(t for _, t in live) == sorted(t["trace_id"] for t in truth)  # once each
    errors = _tasks(ls_client, store, "live-errors")
    assert [t for _, t in errors] == [t["trace_id"] for t in truth if t["error"]]
    by_task = {t.id: t for t in ls_client.sdk.tasks.list(
        project=int(store.queue("live")["project_id"]), fields="all", page_size=100)}
    for expected in truth:  # complete: what the app sent and got back, both spans
        stored = store.trace(expected["trace_id"])
        assert stored is not None and stored.source == "collect"
        assert stored.system_prompt == SYSTEM
        assert [(m.role, m.content) for m in stored.messages] == [("user", expected["question"])]
        assert stored.output == expected["answer"]
        assert len(stored.spans) == 2 and stored.metadata.model == "gpt-4o-mini"
        assert bool(stored.metadata.error) == expected["error"]
        [task_id] = [i for i, t in live if t == expected["trace_id"]]
        assert by_task[task_id].data["answer"] == expected["answer"]
    state = store.collect_trace_state(truth[0]["trace_id"])
    assert state is not None and state["assemblies"] == 1


def test_a_trace_in_three_batches_is_assembled_once_then_updated_by_late_spans(
        collect: Callable[..., Collect], ls_client: LabelStudioClient, ls_env: Path) -> None:
    server = collect("--queue", "live-batches")
    store = _store(ls_env)
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    with FakeLLM() as llm:
        llm.set_default("It has shipped.")
        [sent] = _app("batches", server, llm, ls_env, "--gap", "1.5")
        trace_id = sent["trace_id"]
        gaps = [b - a for a, b in zip(sent["sent_at"], sent["sent_at"][1:], strict=False)]
        assert min(gaps) >= 1.4  # three exports, each well inside the quiet time
        _wait("the trace routed", lambda: len(_tasks(ls_client, store, "live-batches")) == 1
              and _settled(store, 1))
        state = store.collect_trace_state(trace_id)
        assert state is not None and state["assemblies"] == 1  # never assembled in parts
        first = store.trace(trace_id)
        assert first is not None and len(first.spans) == 3
        [(task_id, routed)] = _tasks(ls_client, store, "live-batches")
        assert routed == trace_id

        def task_data() -> dict[str, Any]:
            return dict(ls_client.sdk.tasks.get(id=task_id).data)

        before = task_data()
        # what the converter writes, and why the trace is in the queue (its thumbs: none)
        routing = {"queue_reasons": "all", "thumbs": ""}
        assert before == {**trace_to_task(first, schema)["data"], **routing}

        # a late span (after routing): the stored trace and the unannotated task change
        llm.set_default("You can change it until noon.")
        _app("late", server, llm, ls_env, "--trace-id", trace_id, "--parent-span-id",
             sent["root_span_id"], "--question", "Follow-up: can I change the address?")
        _wait("the late span assembled", lambda: (store.collect_trace_state(trace_id) or {}
                                                   ).get("assemblies") == 2
              and _settled(store, 1))
        second = store.trace(trace_id)
        assert second is not None and len(second.spans) == 4
        updated = task_data()
        assert updated == {**trace_to_task(second, schema)["data"], **routing}
        assert updated != before

        # once a reviewer has annotated the task, a late span updates the store only
        ls_client.sdk.annotations.create(id=task_id, result=[
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": ["pass"]}}])
        llm.set_default("Another late answer.")
        _app("late", server, llm, ls_env, "--trace-id", trace_id, "--parent-span-id",
             sent["root_span_id"], "--question", "One more thing?")
        _wait("the second late span assembled", lambda: (store.collect_trace_state(
            trace_id) or {}).get("assemblies") == 3 and _settled(store, 1))
    third = store.trace(trace_id)
    assert third is not None and len(third.spans) == 5
    assert task_data() == updated  # what the reviewer saw stays
    assert len(_tasks(ls_client, store, "live-batches")) == 1


def test_kill_9_under_load_loses_no_acknowledged_span_and_duplicates_none(
        collect: Callable[..., Collect], ls_client: LabelStudioClient, ls_env: Path) -> None:
    server = collect("--queue", "live-crash")
    acked = ls_env / "acked.jsonl"
    questions = [f"Question {i}: where is parcel {i}?" for i in range(120)]
    (ls_env / "many.json").write_text(json.dumps(questions))
    store = _store(ls_env)

    def acked_spans() -> list[tuple[str, str]]:
        if not acked.exists():
            return []
        return [tuple(pair) for line in acked.read_text().splitlines() if line.strip()
                for pair in json.loads(line)]  # type: ignore[misc]

    with FakeLLM() as llm:
        llm.set_default("It is on its way.")
        process, _ = _app("calls", server, llm, ls_env, "--questions",
                          str(ls_env / "many.json"), "--acked", str(acked), background=True)
        try:
            _wait("some spans acknowledged", lambda: len(acked_spans()) >= 60, timeout=120)
            server.kill9()
            before_kill = len(acked_spans())
            time.sleep(1.0)
            server.start()  # same port, same store: the exporter's retries reach it again
            assert process.wait(timeout=300) == 0
        finally:
            if process.poll() is None:
                process.kill()
    spans = acked_spans()
    assert before_kill >= 60 and len(spans) > before_kill  # acknowledged on both sides
    trace_ids = {t for t, _ in spans}
    _wait("everything assembled and routed", lambda: _settled(store, len(trace_ids))
          and len(_tasks(ls_client, store, "live-crash")) >= len(trace_ids), timeout=180)
    for trace_id, span_id in spans:  # no acknowledged span lost
        stored = store.trace(trace_id)
        assert stored is not None, trace_id
        assert span_id in {s.span_id for s in stored.spans}, (trace_id, span_id)
    tasks = _tasks(ls_client, store, "live-crash")
    routed = [t for _, t in tasks]
    assert len(routed) == len(set(routed))  # no trace twice in the queue
    assert trace_ids <= set(routed)
    for trace_id in trace_ids:  # no span twice in a trace
        stored = store.trace(trace_id)
        assert stored is not None
        ids = [s.span_id for s in stored.spans]
        assert len(ids) == len(set(ids))
