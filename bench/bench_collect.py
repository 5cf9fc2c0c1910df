"""Benchmark: ``ls-llmtrace collect`` under gunicorn, against the raw parse of the same
payloads.

The payloads are made by the real OpenTelemetry SDK (tests/support/otlp_payloads.py):
traces of a root span and a chat span, their messages in a GenAI log record, encoded as
``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` protobuf, ``--per-request``
traces per request. Measured in the same run:

* **accepted**: every request POSTed (``--clients`` threads, keep-alive) to a real
  ``collect --no-assemble`` (gunicorn, the SQLite store), each answered 200 only after its
  spans are committed; spans (and log records) per second;
* **baseline**: the raw parse of the same bodies: protobuf decoding and the OTLP/JSON
  mapping (``MessageToDict``), what any receiver does before anything else;
* **routed** (with a Label Studio): ``collect`` assembling and routing, from the first
  request until every trace is a task in its queue; traces per second.

    .venv/bin/python bench/bench_collect.py [--traces 2000] [--per-request 100]
        [--runs 2] [--clients 4] [--ls-url URL --ls-token T]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from benchlib import ROOT, alternate, figure, ratio  # noqa: E402

TOKEN = "bench-collect-token"


def payloads(traces: int, per_request: int) -> tuple[list[tuple[str, bytes]], int, int]:
    """(path, protobuf body) per request, and how many spans and log records in all."""
    from tests.support.otlp_payloads import sdk_requests

    out: list[tuple[str, bytes]] = []
    spans = logs = 0
    for batch in range(0, traces, per_request):
        made = sdk_requests(min(per_request, traces - batch), prefix=f"batch {batch}")
        out.append(("/v1/logs", made.logs.SerializeToString()))
        out.append(("/v1/traces", made.traces.SerializeToString()))
        spans += sum(len(ss.spans) for rs in made.traces.resource_spans
                     for ss in rs.scope_spans)
        logs += sum(len(sl.log_records) for rl in made.logs.resource_logs
                    for sl in rl.scope_logs)
    return out, spans, logs


def parse_all(bodies: list[tuple[str, bytes]]) -> None:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    for path, body in bodies:
        kind = ExportTraceServiceRequest if path == "/v1/traces" else ExportLogsServiceRequest
        json_format.MessageToDict(kind.FromString(body))


class Collect:
    """``ls-llmtrace collect`` in its own process group, on a fresh store."""

    def __init__(self, work: Path, env: dict[str, str], *args: str) -> None:
        from ls_llmtrace.labelstudio.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite:///{work / 'store.sqlite'}"
        self.took = 0.0
        log = (work / "collect.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ls_llmtrace", "collect", "--port", str(self.port), *args],
            env={**os.environ, **env, "LS_LLMTRACE_DB": self.store,
                 "LS_LLMTRACE_HOME": str(work), "LS_LLMTRACE_COLLECT_TOKEN": TOKEN},
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit("collect did not start: " + (work / "collect.log").read_text()[-2000:])

    def send(self, bodies: list[tuple[str, bytes]], clients: int) -> None:
        sessions: dict[int, requests.Session] = {}
        import threading

        def post(item: tuple[str, bytes]) -> None:
            session = sessions.setdefault(threading.get_ident(), requests.Session())
            while True:
                answer = session.post(self.url + item[0], data=item[1], headers={
                    "Content-Type": "application/x-protobuf",
                    "Authorization": f"Bearer {TOKEN}"}, timeout=60)
                if answer.status_code in (429, 503):
                    time.sleep(float(answer.headers.get("Retry-After", "1")))
                    continue
                if answer.status_code != 200:
                    raise SystemExit(f"collect answered {answer.status_code}: {answer.text}")
                return

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(post, bodies))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def routed(work: Path, env: dict[str, str], bodies: list[tuple[str, bytes]], traces: int,
           clients: int) -> float:
    """Seconds from the first request until every trace is a task in its queue."""
    from ls_llmtrace.labelstudio.client import LabelStudioClient
    from ls_llmtrace.store import Store

    server = Collect(work, {**env, "LS_LLMTRACE_COLLECT_SETTLE_S": "0",
                            "LS_LLMTRACE_COLLECT_POLL_S": "0.05"}, "--queue", "bench-live")
    try:
        started = time.perf_counter()
        server.send(bodies, clients)
        store = Store(server.store)
        client = LabelStudioClient(env["LS_LLMTRACE_LS_URL"], env["LS_LLMTRACE_LS_TOKEN"])
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            counts = store.collect_counts()
            queue = store.queue("bench-live")
            if counts["traces_waiting"] == 0 and counts["traces"] >= traces and queue:
                break
            time.sleep(0.1)
        took = time.perf_counter() - started
        tasks = list(client.task_trace_ids(int(store.queue("bench-live")["project_id"])))
        if len({t for _, t in tasks}) != traces or len(tasks) != traces:
            raise SystemExit(f"expected {traces} tasks, found {len(tasks)}")
        return took
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--per-request", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--ls-url")
    parser.add_argument("--ls-token")
    args = parser.parse_args()
    bodies, spans, logs = payloads(args.traces, args.per_request)
    items = spans + logs
    megabytes = sum(len(b) for _, b in bodies) / 2**20
    print(f"{args.traces} traces: {spans} spans + {logs} log records in {len(bodies)} "
          f"requests, {megabytes:.1f} MiB of protobuf", flush=True)
    env: dict[str, str] = {}
    if args.ls_url:
        env = {"LS_LLMTRACE_LS_URL": args.ls_url, "LS_LLMTRACE_LS_TOKEN": args.ls_token or ""}
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        servers: list[Any] = []

        def accept(run: int) -> None:
            server = Collect(Path(tmp) / f"accept-{run}", env, "--no-assemble")
            servers.append(server)
            try:
                started = time.perf_counter()
                server.send(bodies, args.clients)
                server.took = time.perf_counter() - started
            finally:
                server.stop()

        for run in range(args.runs):
            (Path(tmp) / f"accept-{run}").mkdir()
        # the server's start is not part of the figure: accept() measures from its send
        seconds = alternate(args.runs, parse=lambda r: parse_all(bodies), accept=accept)
        seconds["accept"] = [s.took for s in servers]
        best, median = ratio(seconds, "accept", "parse")
        fastest = min(seconds["accept"])
        figure(f"collect: {args.traces:,} traces accepted (committed) / raw protobuf parse "
               "(time)", best, median=median, best=best,
               detail=f"{items / fastest:,.0f} spans+logs/s accepted ({spans / fastest:,.0f}"
                      f" spans/s), parse {items / min(seconds['parse']):,.0f}/s; "
                      f"{args.clients} clients, {args.per_request} traces per request")
        if args.ls_url:
            work = Path(tmp) / "route"
            work.mkdir()
            took = routed(work, env, bodies, args.traces, args.clients)
            parse = min(seconds["parse"])
            figure(f"collect: {args.traces:,} traces routed into Label Studio / raw protobuf "
                   "parse (time)", took / parse,
                   detail=f"{args.traces / took:,.1f} traces/s routed (first request to the "
                          f"last task), {took:.1f} s; parse {parse:.2f} s")


if __name__ == "__main__":
    main()
