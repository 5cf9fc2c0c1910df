"""Benchmark: the whole ``ls-llmtrace import`` of N native traces against Label Studio's own
bulk import of the same task JSON, in the same run.

For each size (default 1,000 and 10,000 traces of ~3 KB, bench_import.py's generator):

* **ours**: ``ls-llmtrace import FILE --queue <new>`` as a process (start-up, reading,
  validation, the store, the claims, the project, the tasks), a fresh store each run;
* **baseline**: what Label Studio itself needs for the same result: create the project
  (same label config) and one ``POST /api/projects/{id}/import`` of the task JSON the
  import builds (serialized beforehand, sent with plain ``requests``).

Runs alternate (A B, B A, ...); each project is deleted after its run so Label Studio does
not grow. Prints and reports baseline/ours (1.0 = as fast as Label Studio's own import;
goal >= 0.8), then the fixed cost: a 1-trace import against Label Studio's own road for
one task, and the Python start-up in it (the floor of the 1k ratio). The package's byte
code is compiled first, as an installed package has it. Run from the repository root:

    .venv/bin/python bench/bench_e2e_import.py [--counts 1000,10000] [--runs 3]
        [--ls-url URL --ls-token TOKEN]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import write_file  # noqa: E402
from benchlib import ROOT, compile_sources, figure, label_studio, ratio, timed  # noqa: E402
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task  # noqa: E402
from ls_llmtrace.ingest.importers import read_any  # noqa: E402
from ls_llmtrace.schema.labelconfig import build_label_config  # noqa: E402
from ls_llmtrace.schema.model import load_schema  # noqa: E402

CLI = [sys.executable, "-m", "ls_llmtrace"]  # PYTHONPATH picks the checkout to measure
IMPORT_ARGS: list[str] = []  # more options for ``ls-llmtrace import`` (--import-args)


# Label Studio refuses a request body over DATA_UPLOAD_MAX_MEMORY_SIZE (250 MiB): its own
# road posts a bigger import in as few parts as stay well under it
UPLOAD_PART = 200 * 2**20


def task_json(path: Path) -> list[bytes]:
    """The task JSON the import builds, as the fewest request bodies Label Studio takes."""
    schema = load_schema(ROOT / "label_configs" / "default.v1.yaml")
    options = ReviewOptions()
    tasks = []
    for item in read_any(path, "native"):
        assert not isinstance(item, list), item
        tasks.append(trace_to_task(item, schema, options))
    whole = json.dumps(tasks, ensure_ascii=False).encode()
    parts = -(-len(whole) // UPLOAD_PART)
    if parts == 1:
        return [whole]
    step = -(-len(tasks) // parts)
    return [json.dumps(tasks[i:i + step], ensure_ascii=False).encode()
            for i in range(0, len(tasks), step)]


class Bulk:
    """Label Studio's own road: a project, then one import request of the whole JSON."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        schema = load_schema(ROOT / "label_configs" / "default.v1.yaml")
        self.config = build_label_config(schema)

    def run(self, bodies: list[bytes], n: int) -> int:
        r = self.http.post(f"{self.url}/api/projects",
                           json={"title": f"bulk-{uuid.uuid4().hex[:8]}",
                                 "label_config": self.config})
        r.raise_for_status()
        project = int(r.json()["id"])
        created = 0
        for body in bodies:
            r = self.http.post(f"{self.url}/api/projects/{project}/import", data=body,
                               headers={"Content-Type": "application/json"})
            r.raise_for_status()
            created += int(r.json()["task_count"])
        assert created == n, (created, n)
        return project

    def count(self, project: int) -> int:
        r = self.http.get(f"{self.url}/api/projects/", params={
            "ids": project, "include": "id,task_number"})
        r.raise_for_status()
        body = r.json()
        rows = body["results"] if isinstance(body, dict) else body
        return int(rows[0]["task_number"])

    def delete(self, project: int) -> None:
        self.http.delete(f"{self.url}/api/projects/{project}/").raise_for_status()


def ours(url: str, token: str, path: Path, work: Path, run: int) -> int:
    """One ``ls-llmtrace import`` into a new queue; returns its project id."""
    queue = f"bench{run}{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "LS_LLMTRACE_LS_URL": url, "LS_LLMTRACE_LS_TOKEN": token,
           "LS_LLMTRACE_HOME": str(work / f"home-{queue}"),
           "LS_LLMTRACE_DB": f"sqlite:///{work / f'store-{queue}.sqlite'}"}
    done = subprocess.run([*CLI, "import", str(path), "--queue", queue, "--format",
                           "native", *IMPORT_ARGS], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"ls-llmtrace import failed ({done.returncode}): {done.stderr}")
    match = re.match(r"project (\d+):", done.stdout)
    assert match, done.stdout
    return int(match.group(1))


def roads(bulk: Bulk, url: str, token: str, work: Path, n: int, runs: int,
          ) -> tuple[dict[str, list[float]], int, int]:
    """Alternating runs of both roads at one size: (seconds per road, task JSON bytes,
    requests of the bulk road)."""
    path = work / f"native-{n}.jsonl"
    write_file("native", n, path)
    bodies = task_json(path)
    projects: list[int] = []
    roads = {"import": lambda run: projects.append(ours(url, token, path, work, run)),
             "bulk": lambda run: projects.append(bulk.run(bodies, n))}
    seconds: dict[str, list[float]] = {"import": [], "bulk": []}
    for run in range(runs):
        order = list(roads.items())
        for name, fn in order if run % 2 == 0 else order[::-1]:
            _, took = timed(lambda fn=fn, r=run: fn(r))
            seconds[name].append(took)
        for project in projects:  # every task there, then the project goes
            assert bulk.count(project) == n, (project, bulk.count(project), n)
            bulk.delete(project)
        projects.clear()
        print(f"{n:>6} traces, run {run + 1}: import {seconds['import'][-1]:.2f} s, "
              f"Label Studio bulk import {seconds['bulk'][-1]:.2f} s", flush=True)
    return seconds, sum(len(b) for b in bodies), len(bodies)


def measure(bulk: Bulk, url: str, token: str, work: Path, n: int, runs: int) -> float:
    """Both roads at one size; reports baseline/ours, returns the best bulk seconds."""
    seconds, size, parts = roads(bulk, url, token, work, n, runs)
    best, median = ratio(seconds, "bulk", "import")
    figure(f"import of {n:,} native traces / LS bulk import (speed)", best, ">= 0.8",
           best=best, median=median,
           detail=f"import {min(seconds['import']):.2f} s, bulk "
           f"{min(seconds['bulk']):.2f} s ({size / 2**20:.1f} MiB of task JSON"
           + (f" in {parts} requests: LS's upload limit)" if parts > 1 else ")"))
    return min(seconds["bulk"])


def start_up(runs: int) -> float:
    """Seconds for a Python process to load what an import loads, and exit."""
    code = ("import ls_llmtrace.cli, ls_llmtrace.cli.ingest, ls_llmtrace.ingest.routing, "
            "ls_llmtrace.ingest.importers, ls_llmtrace.store, requests")
    return min(timed(lambda: subprocess.run([sys.executable, "-c", code], check=True))[1]
               for _ in range(runs))


def fixed_cost(bulk: Bulk, url: str, token: str, work: Path, runs: int,
               bulk_1k: float | None) -> None:
    """The cost of an import that does not grow with its size: a 1-trace import against
    Label Studio's own road for 1 task (a project and one import request). With the
    bulk import of 1,000 tasks it bounds the best 1k ratio reachable."""
    seconds, _, _ = roads(bulk, url, token, work, 1, runs)
    ours, theirs = min(seconds["import"]), min(seconds["bulk"])
    python = start_up(runs)
    detail = (f"Label Studio's own for 1 task {theirs:.2f} s (create + import); of ours, "
              f"Python start-up and imports {python:.2f} s")
    if bulk_1k is not None:
        ceiling = bulk_1k / (bulk_1k + ours - theirs)
        detail += (f"; with LS bulk of 1,000 at {bulk_1k:.2f} s, the best 1k ratio "
                   f"reachable is {ceiling:.2f} (all per-trace work hidden)")
    figure("fixed cost of an import (1 trace, seconds)", ours, "", unit=" s", best=ours,
           median=statistics.median(seconds["import"]), detail=detail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs (best kept)")
    parser.add_argument("--ls-url")
    parser.add_argument("--ls-token")
    parser.add_argument("--no-fixed", action="store_true", help="skip the 1-trace import")
    parser.add_argument("--import-args", default="",
                        help="more options for ls-llmtrace import, e.g. '--batch-size 2000'")
    args = parser.parse_args()
    IMPORT_ARGS.extend(args.import_args.split())
    compile_sources()
    with label_studio(args.ls_url, args.ls_token) as (url, token), \
            tempfile.TemporaryDirectory() as tmp:
        bulk = Bulk(url, token)
        best_bulk = {}
        for n in [int(c) for c in args.counts.split(",")]:
            best_bulk[n] = measure(bulk, url, token, Path(tmp), n, args.runs)
        if not args.no_fixed:
            fixed_cost(bulk, url, token, Path(tmp), max(3, args.runs), best_bulk.get(1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
