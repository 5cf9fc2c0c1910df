"""What the benchmarks share: alternating best-of-N timing, a managed Label Studio, and
the figures each script reports to ``bench/run_all.py``.

A script calls :func:`figure` for every ratio it measured; when ``LS_LLMTRACE_BENCH_OUT``
names a file (``run_all.py`` sets it) the figure is appended there as one JSON line, so
one table can be built from every script's figures. Run on its own, a script only prints.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def figure(name: str, value: float, goal: str = "", *, unit: str = "x", bench: str = "",
           best: float | None = None, median: float | None = None, detail: str = "") -> None:
    """Report one figure (a ratio against a baseline of the same run, usually)."""
    row = {"figure": name, "value": value, "unit": unit, "goal": goal, "detail": detail,
           "bench": bench or Path(os.environ.get("LS_LLMTRACE_BENCH_SCRIPT", "")).name,
           "best": best, "median": median}
    print(f"  figure: {name} = {value:.3g}{unit} {('(goal ' + goal + ')') if goal else ''}"
          f"{(' ' + detail) if detail else ''}", flush=True)
    out = os.environ.get("LS_LLMTRACE_BENCH_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


def compile_sources() -> None:
    """Compile the checkout's byte code, as ``pip install`` does for an installed package
    (a machine with ``PYTHONDONTWRITEBYTECODE`` set would else compile every module
    again in every process a benchmark starts)."""
    import compileall

    compileall.compile_dir(ROOT / "src", quiet=1)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def alternate(runs: int, **fns: Callable[[int], Any]) -> dict[str, list[float]]:
    """Run each function ``runs`` times, in turn (A B A B ...; who starts alternates), and
    return every run's seconds per name. Each function gets the run's index."""
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for run in range(runs):
        order = names if run % 2 == 0 else names[::-1]
        for name in order:
            _, took = timed(lambda n=name, r=run: fns[n](r))
            seconds[name].append(took)
    return seconds


def ratio(seconds: dict[str, list[float]], ours: str, base: str) -> tuple[float, float]:
    """(best, median) of ours/base: best over best, and the median of the pair ratios."""
    pairs = [a / b for a, b in zip(seconds[ours], seconds[base], strict=True)]
    return min(seconds[ours]) / min(seconds[base]), statistics.median(pairs)


@contextmanager
def label_studio(url: str | None = None, token: str | None = None,
                 ) -> Iterator[tuple[str, str]]:
    """(url, token) of a Label Studio: the one given, or a managed one started in a temp
    directory and stopped (and removed) at the end."""
    if url:
        if not token:
            raise SystemExit("--ls-url needs --ls-token")
        yield url, token
        return
    import shutil
    import tempfile

    from ls_llmtrace import settings
    from ls_llmtrace.labelstudio.server import ManagedLabelStudio, free_port

    work = Path(tempfile.mkdtemp(prefix="bench-ls-"))
    managed = ManagedLabelStudio(work / "ls", free_port(), settings.ls_bin())
    print(f"starting Label Studio at {managed.url} ...", flush=True)
    try:
        creds = managed.start(timeout=400)
        yield managed.url, creds.token
    finally:
        managed.stop()
        shutil.rmtree(work, ignore_errors=True)
