"""Run every benchmark in bench/ and write one table of their figures.

Each script reports its figures (ratios against a baseline measured in the same script,
best of N alternating runs; see bench/benchlib.py) into one file; this collects them into
``bench/results/latest.json`` and ``bench/results/latest.md`` with the machine they ran
on, and puts the table into the README between its ``bench:begin``/``bench:end`` marks.
One Label Studio is started for every script that needs one; the package's byte code is
compiled first (as an installed package has it). A ``--scale`` run writes
``latest-scale.*`` and the README's second table.

    .venv/bin/python bench/run_all.py            # make bench: the default sizes
    .venv/bin/python bench/run_all.py --scale    # make bench-scale: 1k / 10k / 50k tasks
    .venv/bin/python bench/run_all.py --only store,cli --no-readme
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import ROOT, compile_sources, label_studio  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# name -> (script, needs Label Studio, arguments, arguments at --scale)
BENCHES: dict[str, tuple[str, bool, list[str], list[str]]] = {
    "conversion": ("bench_import.py", False, ["--count", "20000", "--repeat", "2"],
                   ["--count", "100000", "--repeat", "2"]),
    "import": ("bench_e2e_import.py", True, ["--counts", "1000,10000", "--runs", "2"],
               ["--counts", "1000,10000,50000", "--runs", "2"]),
    "sync": ("bench_sync.py", True, ["--tasks", "10000", "--small", "1000", "--rounds", "3"],
             ["--tasks", "50000", "--sizes", "1000,10000,50000", "--rounds", "2", "--idle-only"]),
    "store": ("bench_store.py", False, ["--count", "100000", "--runs", "2", "--no-per-record"],
              ["--count", "100000", "--runs", "3"]),
    "cli": ("bench_cli.py", False, ["--runs", "5"], ["--runs", "5"]),
    "judge": ("bench_judge.py", False, ["--concurrency", "8", "--tasks", "400"],
              ["--concurrency", "1", "8", "32"]),
    "gate": ("bench_gate.py", False, ["--cases", "400"], []),
    "judgegate": ("bench_judgegate.py", False, [], []),
    "clusters": ("bench_clusters.py", False, ["--n", "2000", "--seeds", "2"], []),
    "collect": ("bench_collect.py", True, ["--traces", "2000", "--runs", "2"],
                ["--traces", "10000", "--runs", "3"]),
}


def machine() -> dict[str, Any]:
    """What the figures ran on (the machine is shared: the load says how busy it was)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Benchmarks of {result['when'][:16].replace('T', ' ')} UTC "
             f"({'scale' if result['scale'] else 'default'} sizes), on {m['cpus']} CPUs "
             f"({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, {m['platform']}, "
             f"Python {m['python']}; load average {m['load_average']} at the start, "
             f"{result['load_after']} at the end (a shared machine: ratios are measured "
             "against a baseline in the same run, best of alternating runs).", "",
             "| figure | value | goal | detail | bench |", "|---|---|---|---|---|"]
    for f in result["figures"]:
        value = f"{f['value']:.3g}{f['unit']}"
        lines.append(f"| {f['figure']} | {value} | {f['goal'] or ''} | {f['detail']} | "
                     f"{f['bench']} |")
    for failed in result["failed"]:
        lines.append(f"| {failed} did not finish | | | see its output | |")
    return "\n".join(lines) + "\n"


def put_in_readme(table: str, mark: str = "bench") -> None:
    """The table between the README's ``<mark>:begin`` and ``<mark>:end`` comments."""
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    begin, end = f"<!-- {mark}:begin -->", f"<!-- {mark}:end -->"
    if begin not in text or end not in text:
        print(f"README.md has no {mark}:begin/{mark}:end marks: not updated")
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{table}{end}{tail}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", action="store_true", help="the 1k/10k/50k sizes")
    parser.add_argument("--only", default="", help=f"comma-separated of {', '.join(BENCHES)}")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--ls-url")
    parser.add_argument("--ls-token")
    args = parser.parse_args()
    chosen = [b for b in (args.only.split(",") if args.only else BENCHES)]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    compile_sources()
    started = datetime.now(UTC)
    info = machine()
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.jsonl"
        out.touch()
        needs_ls = any(BENCHES[b][1] for b in chosen)
        with label_studio(args.ls_url, args.ls_token) if needs_ls else _nothing() as ls:
            for name in chosen:
                script, with_ls, small, scale = BENCHES[name]
                cmd = [sys.executable, str(ROOT / "bench" / script),
                       *(scale if args.scale and scale else small)]
                if with_ls and ls is not None:
                    cmd += ["--ls-url", ls[0], "--ls-token", ls[1]]
                print(f"\n== {name}: {' '.join(cmd[1:]).replace(ls[1] if ls else '', '***')}",
                      flush=True)
                env = {**os.environ, "LS_LLMTRACE_BENCH_OUT": str(out),
                       "LS_LLMTRACE_BENCH_SCRIPT": script, "HF_HUB_OFFLINE": "1"}
                began = time.monotonic()
                done = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
                print(f"== {name}: exit {done.returncode} in {time.monotonic() - began:.0f} s",
                      flush=True)
                if done.returncode != 0:
                    failed.append(script)
        figures = [json.loads(line) for line in out.read_text().splitlines() if line]
    result = {"when": started.isoformat(), "scale": args.scale, "machine": info,
              "load_after": [round(x, 2) for x in os.getloadavg()], "figures": figures,
              "failed": failed}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "latest-scale" if args.scale else "latest"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / f"{stem}.md").write_text(table)
    print("\n" + table)
    if not args.no_readme:
        put_in_readme(table, "bench-scale" if args.scale else "bench")
    return 1 if failed else 0


class _nothing:
    """A context without a Label Studio."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
