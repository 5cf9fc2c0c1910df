"""Benchmark: the importers' conversion now against the importers of an earlier commit.

Writes the inputs of ``bench_import.py`` once per format, then runs the conversion
(import + ``trace_to_task`` + the task's JSON, written by ``json.dumps`` on both sides:
the earlier commit may not have the import's own encoder) in fresh processes, one with
this checkout's ``src`` first on the path and one with ``src`` of the commit
(``git archive``), in turn (A B B A ...), and keeps each side's best CPU time of
``--runs`` (CPU time, not wall time: the machine is shared). Prints per format both
times and the ratio now/before. Run by hand::

    .venv/bin/python bench/compare_import.py --before 2800550 [--count 3000] [--runs 5]
        [--formats native,otlp,langfuse] [--profile FMT]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def worker(fmt: str, path: Path, reps: int) -> None:
    """(in the child) the best CPU seconds of ``reps`` conversions of the file."""
    sys.path.insert(0, str(BENCH))
    import bench_import

    bench_import.convert(path, fmt, 50, body="json")  # imports and caches warm
    if reps == 0:  # a profile instead
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(bench_import.convert, path, fmt, body="json")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        return
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        bench_import.convert(path, fmt, body="json")
        best = min(best, time.process_time() - start)
    print(best)


def checkout(commit: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(into, filter="data")
    return into / "src"


def run(src: Path, fmt: str, path: Path, reps: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    out = subprocess.run([sys.executable, __file__, "--worker", fmt, str(path), str(reps)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def profile(src: Path, fmt: str, path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    subprocess.run([sys.executable, __file__, "--worker", fmt, str(path), "0"], env=env,
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="2800550", help="the commit to compare with")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5, help="processes per side and format")
    parser.add_argument("--reps", type=int, default=2, help="conversions per process (best)")
    parser.add_argument("--formats", default="native,otlp,langfuse")
    parser.add_argument("--profile", default="", help="print a cProfile of this format (now)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]))
        return
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(ROOT / "src"))
    import bench_import

    now = ROOT / "src"
    with tempfile.TemporaryDirectory() as tmp:
        before = checkout(args.before, Path(tmp) / "before")
        print(f"python {sys.version.split()[0]}, {args.count:,} traces per format, best CPU "
              f"time of {args.runs} processes x {args.reps} runs per side; before = "
              f"{args.before}", flush=True)
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"{fmt}.jsonl"
            bench_import.write_file(fmt, args.count, path)
            if args.profile == fmt:
                profile(now, fmt, path)
            best = {"now": float("inf"), "before": float("inf")}
            for index in range(args.runs):
                order = [("now", now), ("before", before)]
                for name, src in order if index % 2 == 0 else order[::-1]:
                    best[name] = min(best[name], run(src, fmt, path, args.reps))
            change = best["now"] / best["before"] - 1
            print(f"[{fmt}] before {best['before']:.3f} s, now {best['now']:.3f} s: "
                  f"{change:+.1%} ({args.count / best['now']:,.0f} traces/s now)", flush=True)


if __name__ == "__main__":
    main()
