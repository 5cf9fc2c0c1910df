"""Throughput of the LLM judge through the ML backend, against a provider with fixed latency.

Starts the local OpenAI-compatible server (tests/support/fake_llm_server.py) answering
every request after a fixed latency (default 200 ms), and the ML backend under gunicorn
(as Label Studio runs it) with the LLM judge, the cache off and
LS_LLMTRACE_JUDGE_CONCURRENCY=c. Sends the tasks as one batched ``POST /predict`` (what
Label Studio's "Retrieve predictions" does) and prints, per concurrency:

- throughput / ideal, where ideal = c / latency (the provider's latency is the floor);
- throughput / baseline, where the baseline is a bare thread pool of c workers posting the
  same number of chat completions to the same server in the same run (what this machine
  and this server allow, with no judge, prompt building, validation or Flask in between).

Run from the repository root:

    .venv/bin/python bench/bench_judge.py                    # 1,000 tasks at c=8 and 32
    .venv/bin/python bench/bench_judge.py --c1-tasks 100     # c=1 on 100 tasks (20 s)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.fake_llm_server import FakeLLM  # noqa: E402
from tests.unit.judge_configs import FULL_CONFIG, ITEST_SCHEMA  # noqa: E402

from benchlib import figure  # noqa: E402
from ls_llmtrace.judging.managed import ManagedBackend  # noqa: E402
from ls_llmtrace.labelstudio.server import free_port  # noqa: E402


def tasks(n: int, tag: str) -> list[dict]:
    messages = [{"role": "user", "content": "Is it raining in Paris?"},
                {"role": "tool", "content": "rainy, 57F"}]
    return [{"id": i, "data": {"trace_id": f"{tag}-{i}", "messages": messages,
                               "answer": f"Answer {tag} {i}: it is sunny and 57F in Paris."}}
            for i in range(n)]


def baseline(llm: FakeLLM, n: int, concurrency: int) -> float:
    """Tasks per second of a bare client pool against the same server."""
    local = __import__("threading").local()

    def call(i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(f"{llm.base_url}/chat/completions", json={
            "model": "fake", "messages": [{"role": "user", "content": f"task {i}"}]}, timeout=30)
        response.raise_for_status()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, range(n)))
    return n / (time.monotonic() - started)


def judged(llm: FakeLLM, n: int, concurrency: int, work: Path) -> tuple[float, int]:
    """Tasks per second through the backend's /predict; and how many got a prediction."""
    schemas = work / "schemas"
    schemas.mkdir(exist_ok=True)
    (schemas / "itest.v1.yaml").write_text(ITEST_SCHEMA)
    run_dir = work / f"backend-c{concurrency}"
    backend = ManagedBackend(run_dir, free_port())
    backend.start(env={
        "LS_LLMTRACE_HOME": str(run_dir), "LS_LLMTRACE_JUDGE": "llm",
        "LS_LLMTRACE_LLM_BASE_URL": llm.base_url, "LS_LLMTRACE_LLM_MODEL": "fake-judge",
        "LS_LLMTRACE_JUDGE_CACHE": "off", "LS_LLMTRACE_JUDGE_CONCURRENCY": str(concurrency),
        "LS_LLMTRACE_SCHEMA_DIR": str(schemas), "LS_LLMTRACE_JUDGE_FEW_SHOT": "0",
        "LS_LLMTRACE_BACKEND_USER": "", "LS_LLMTRACE_BACKEND_PASSWORD": "",
        "LS_LLMTRACE_PREDICT_BUDGET_S": "3600",  # one big batch: no time budget here
        "LOG_LEVEL": "WARNING",
    })
    try:
        requests.post(f"{backend.url}/setup", json={"schema": FULL_CONFIG},
                      auth=backend.auth, timeout=30)
        batch = tasks(n, f"c{concurrency}")
        started = time.monotonic()
        response = requests.post(f"{backend.url}/predict",
                                 json={"tasks": batch, "label_config": FULL_CONFIG},
                                 auth=backend.auth, timeout=3600)
        elapsed = time.monotonic() - started
        response.raise_for_status()
        results = response.json()["results"]
        return n / elapsed, sum(1 for r in results if r)
    finally:
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--c1-tasks", type=int, default=100,
                        help="tasks at concurrency 1 (1,000 would take 200 s)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    options = parser.parse_args()
    print(f"provider latency {options.latency * 1000:.0f} ms; {os.cpu_count()} CPUs; "
          "cache off; one batched /predict per run")
    print(f"{'c':>3} {'tasks':>6} {'predicted':>9} {'tasks/s':>8} {'ideal':>7} {'ratio':>6} "
          f"{'baseline':>8} {'vs base':>7}")
    with FakeLLM(latency=options.latency) as llm, tempfile.TemporaryDirectory() as tmp:
        for c in options.concurrency:
            n = options.c1_tasks if c == 1 else options.tasks
            base = baseline(llm, min(n, 400), c)
            rate, predicted = judged(llm, n, c, Path(tmp))
            ideal = c / options.latency
            print(f"{c:>3} {n:>6} {predicted:>9} {rate:>8.1f} {ideal:>7.1f} {rate / ideal:>6.2f} "
                  f"{base:>8.1f} {rate / base:>7.2f}", flush=True)
            figure(f"judge through the backend at concurrency {c} / ideal (speed)",
                   rate / ideal, ">= 0.8" if c == 8 else "", best=rate / ideal,
                   detail=f"{n} tasks, {rate:.1f} tasks/s, bare pool {base:.1f}/s")


if __name__ == "__main__":
    main()
