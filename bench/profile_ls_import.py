"""Profile: where Label Studio's own time goes in its bulk import, the baseline of
``bench_e2e_import.py``.

Samples the Label Studio server process with py-spy (a sampling profiler, not a
dependency of the package: ``pip install py-spy``) while it takes one
``POST /api/projects/{id}/import`` of the task JSON the import builds for N native
traces, then prints the share of the samples spent in each stage of the request and the
busiest functions. Both roads of the end-to-end benchmark send the same task JSON, so
this is the part of the import neither can make faster. Run from the repository root:

    .venv/bin/python bench/profile_ls_import.py [--count 10000] [--rate 100]
        [--ls-url URL --ls-token TOKEN --ls-pid PID] [--py-spy PATH]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e_import import Bulk, task_json  # noqa: E402
from bench_import import write_file  # noqa: E402

# stages of the import request, told by a function on the sampled stack (the first that
# matches, in this order); everything else in the request is "other"
STAGES = [
    ("JSON parse of the body by the request parser (rest_framework JSONParser)",
     "JSONParser.parse"),
    ("tasks written (bulk_create)", "bulk_create"),
    ("task counters and states updated", "update_tasks_counters"),
    ("JSON parse of the body by the logging middleware (ContextLogMiddleware)",
     "ContextLogMiddleware.__call__ (label_studio/core/middleware.py:124)"),
    ("annotations / predictions of the tasks", "_save_annotations"),
]
REQUEST = "XApiKeySupportMiddleware.__call__"  # the outermost middleware: a request


@contextmanager
def server(url: str | None, token: str | None, pid: int | None,
           ) -> Iterator[tuple[str, str, int]]:
    """(url, token, server pid): the Label Studio given, or a managed one in a temp dir."""
    if url:
        if not (token and pid):
            raise SystemExit("--ls-url needs --ls-token and --ls-pid")
        yield url, token, pid
        return
    from ls_llmtrace import settings
    from ls_llmtrace.labelstudio.server import ManagedLabelStudio, free_port, read_live_pid

    work = Path(tempfile.mkdtemp(prefix="bench-ls-"))
    managed = ManagedLabelStudio(work / "ls", free_port(), settings.ls_bin())
    print(f"starting Label Studio at {managed.url} ...", flush=True)
    try:
        creds = managed.start(timeout=400)
        live = read_live_pid(managed.pid_file)
        if live is None:
            raise SystemExit("the managed Label Studio has no live pid")
        yield managed.url, creds.token, live
    finally:
        managed.stop()
        shutil.rmtree(work, ignore_errors=True)


def stages(raw: Path) -> tuple[int, Counter[str], Counter[str]]:
    """From py-spy's raw output (one ``frame;frame;... count`` line per stack): the
    samples inside a request, per stage, and per innermost function."""
    total = 0
    per_stage: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if REQUEST not in stack:
            continue  # the server idling between requests
        n = int(count)
        total += n
        frames = stack.split(";")
        leaves[frames[-1]] += n
        stage = next((name for name, frame in STAGES if frame in stack), "other")
        per_stage[stage] += n
    return total, per_stage, leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--ls-url")
    parser.add_argument("--ls-token")
    parser.add_argument("--ls-pid", type=int)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = parser.parse_args()
    if not shutil.which(args.py_spy):
        raise SystemExit("py-spy not found: pip install py-spy, or give --py-spy PATH")
    with tempfile.TemporaryDirectory() as tmp, \
            server(args.ls_url, args.ls_token, args.ls_pid) as (url, token, pid):
        path = Path(tmp) / "native.jsonl"
        write_file("native", args.count, path)
        bodies = task_json(path)
        raw = Path(tmp) / "samples.txt"
        bulk = Bulk(url, token)
        spy = subprocess.Popen([args.py_spy, "record", "--pid", str(pid), "--rate",
                                str(args.rate), "--format", "raw", "--output", str(raw),
                                "--nonblocking"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attached
        began = time.perf_counter()
        project = bulk.run(bodies, args.count)
        seconds = time.perf_counter() - began
        time.sleep(0.5)
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        bulk.delete(project)
        total, per_stage, leaves = stages(raw)
    size = sum(len(b) for b in bodies)
    print(f"Label Studio's bulk import of {args.count:,} tasks ({size / 2**20:.1f} MiB of "
          f"task JSON): {seconds:.2f} s, {total:,} samples inside requests at {args.rate}/s")
    if not total:
        raise SystemExit("no samples: is --ls-pid the server process?")
    for name, n in per_stage.most_common():
        print(f"  {n / total:6.1%}  {name}")
    print("busiest functions (innermost frame):")
    for frame, n in leaves.most_common(8):
        print(f"  {n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
