"""Throughput of the regression gate generating its candidates, against a provider with a
fixed latency.

Builds a golden set of N cases (default 1,000; tests/support/golden_sets.py), starts the
local OpenAI-compatible server (tests/support/fake_llm_server.py) answering every request
after a fixed latency (default 200 ms), and runs the gate as ``eval run --endpoint`` does
(``run_gate``: generation at concurrency c through the retrying client, the store's
candidate cache, every check, the stored run) on a blank store. Prints:

- throughput / ideal, where ideal = c / latency (40 cases/s at c=8 and 200 ms): the target
  is >= 0.8;
- throughput / baseline, where the baseline is a bare thread pool of c workers posting the
  same number of chat completions to the same server in the same run (what this machine
  and this server allow, with no gate in between);
- the re-run from the cache (its calls, read from the server's counter: 0 expected).

Run from the repository root:

    .venv/bin/python bench/bench_gate.py                  # 1,000 cases, c=8, 200 ms
    .venv/bin/python bench/bench_gate.py --cases 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.fake_llm_server import FakeLLM  # noqa: E402
from tests.support.golden_sets import build_set, write_set  # noqa: E402

from benchlib import figure  # noqa: E402
from ls_llmtrace.evals.candidates import GenerationConfig  # noqa: E402
from ls_llmtrace.evals.gate import GateConfig, run_gate  # noqa: E402
from ls_llmtrace.store import Store  # noqa: E402


def baseline(llm: FakeLLM, n: int, concurrency: int) -> float:
    """Requests per second of a bare client pool against the same server."""
    local = threading.local()

    def call(i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(f"{llm.base_url}/chat/completions", json={
            "model": "fake", "messages": [{"role": "user", "content": f"case {i}"}]},
            timeout=30)
        response.raise_for_status()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, range(n)))
    return n / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    options = parser.parse_args()
    n, c = options.cases, options.concurrency
    ideal = c / options.latency
    with tempfile.TemporaryDirectory() as tmp, FakeLLM(latency=options.latency) as llm:
        work = Path(tmp)
        os.environ["LS_LLMTRACE_HOME"] = str(work / "home")
        cases, improved, _ = build_set(n)
        folder = write_set(cases, work / "golden")
        for case_id, answer in improved.items():  # the "model" answers well
            llm.script(case_id, {"status": 200, "content": answer})
        bare = baseline(llm, n, c)
        calls_before = llm.stats()["calls"]
        generation = GenerationConfig(llm.base_url, "bench-model", 0.0, c, max_retries=3)
        with Store(f"sqlite:///{work / 'store.sqlite'}") as store:
            started = time.monotonic()
            run = run_gate(folder, GateConfig(), generation=generation, store=store,
                           name="bench")
            elapsed = time.monotonic() - started
            calls = llm.stats()["calls"] - calls_before
            started = time.monotonic()
            again = run_gate(folder, GateConfig(), generation=generation, store=store,
                             name="bench-rerun", baseline=run.run_id)
            cached_s = time.monotonic() - started
            recalls = llm.stats()["calls"] - calls_before - calls
    rate = n / elapsed
    print(f"gate over {n} cases, {options.latency * 1000:.0f} ms endpoint, concurrency {c}")
    print(f"  {rate:.1f} cases/s in {elapsed:.1f} s ({calls} calls; "
          f"{run.totals['pass']}/{n} pass)")
    print(f"  throughput / ideal ({ideal:.0f}/s):   {rate / ideal:.2f}  (target >= 0.8)")
    print(f"  throughput / bare pool ({bare:.1f}/s): {rate / bare:.2f}")
    figure(f"regression gate generation at concurrency {c} / ideal (speed)", rate / ideal,
           ">= 0.8", best=rate / ideal, detail=f"{n} cases, bare pool {rate / bare:.2f}")
    print(f"  re-run from the cache: {cached_s:.2f} s, {recalls} calls, "
          f"{len(again.comparison.newly_failing) if again.comparison else 'n/a'} newly failing")


if __name__ == "__main__":
    main()
