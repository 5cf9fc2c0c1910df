"""Benchmark: start-up of the command line, per command group, against the bare
interpreter, in the same run.

For ``ls-llmtrace --help`` and ``ls-llmtrace GROUP --help`` of every top-level command
(what a process pays before a command does any work) times the whole process, best of
``--runs`` alternating with ``python -c pass`` (the interpreter's own start-up, the floor),
and says whether the process imported ``label_studio_sdk`` (pandas; read from
``-X importtime``). Goal: < 0.3 s for ``--help`` and the commands that need no Label Studio.
Run from the repository root:

    .venv/bin/python bench/bench_cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import figure  # noqa: E402

CLI = [sys.executable, "-m", "ls_llmtrace"]


def wall(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``cmd``. On a shared,
    loaded machine the CPU time is the steadier of the two."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {process.returncode}")
    return took, usage.ru_utime + usage.ru_stime


def imports_sdk(cmd: list[str]) -> bool:
    done = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True,
                          text=True, check=True)
    return "label_studio_sdk" in done.stderr


def groups() -> list[str]:
    from ls_llmtrace.cli import main

    return sorted(main.commands)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bare = [sys.executable, "-c", "pass"]
    commands = {"--help": [*CLI, "--help"]}
    commands |= {f"{g} --help": [*CLI, g, "--help"] for g in groups()}
    rows = []
    print(f"{'command':36} {'wall ms':>8} {'CPU ms':>7} {'python alone (wall/CPU)':>24}")
    for name, cmd in commands.items():
        ours: list[tuple[float, float]] = []
        base: list[tuple[float, float]] = []
        for run in range(args.runs):
            pair = [("ours", cmd), ("bare", bare)]
            for key, c in pair if run % 2 == 0 else pair[::-1]:
                (ours if key == "ours" else base).append(wall(c))
        sdk = imports_sdk(cmd)
        o_wall, o_cpu = min(w for w, _ in ours), min(c for _, c in ours)
        b_wall, b_cpu = min(w for w, _ in base), min(c for _, c in base)
        rows.append((name, o_wall, o_cpu, b_wall, b_cpu, sdk))
        print(f"ls-llmtrace {name:24} {o_wall * 1000:8.0f} {o_cpu * 1000:7.0f} "
              f"{b_wall * 1000:15.0f} / {b_cpu * 1000:.0f}"
              f"{'  imports label_studio_sdk' if sdk else ''}", flush=True)
    top = rows[0]
    figure("CLI start-up, `ls-llmtrace --help` (CPU seconds)", top[2], "< 0.3", unit=" s",
           best=top[2], detail=f"wall {top[1]:.3f} s; python alone {top[4]:.3f} s CPU; "
           f"label_studio_sdk {'imported' if top[5] else 'not imported'}")
    worst = max(rows[1:], key=lambda r: r[2])
    figure("CLI start-up, slowest `GROUP --help` (CPU seconds)", worst[2], "< 0.3",
           unit=" s", best=worst[2], detail=f"{worst[0]}, wall {worst[1]:.3f} s; groups "
           f"importing label_studio_sdk: {sum(r[5] for r in rows)} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
