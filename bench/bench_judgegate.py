"""The judge gate's bootstrap: the vectorized kappa (evals/judgegate.py) against calling
scikit-learn's ``cohen_kappa_score`` once per resample, on a HaluEval-sized set (4,507
cases, 815 failures), in the same script (a ratio, not a timed test). Also checks the two
give the same interval. Run from the repository root:

    .venv/bin/python bench/bench_judgegate.py [--n 4507] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score

from ls_llmtrace.evals.judgegate import bootstrap_kappas

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import figure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4507)
    parser.add_argument("--resamples", type=int, default=1000)
    options = parser.parse_args()
    rng = np.random.default_rng(0)
    human = np.zeros(options.n, dtype=bool)
    human[: round(options.n * 815 / 4507)] = True
    judge = np.where(rng.random(options.n) < 0.85, human, ~human)

    started = time.perf_counter()
    fast = bootstrap_kappas(human, judge, options.resamples, seed=1)
    vectorized = time.perf_counter() - started

    started = time.perf_counter()
    index_rng = np.random.default_rng(1)  # the same resamples, drawn the same way
    slow = []
    for start in range(0, options.resamples, 256):
        block = index_rng.integers(0, options.n,
                                   size=(min(256, options.resamples - start), options.n))
        slow.extend(cohen_kappa_score(human[i], judge[i]) for i in block)
    per_call = time.perf_counter() - started

    same = np.allclose(fast, np.array(slow))
    print(f"n {options.n}, {options.resamples} resamples: vectorized {vectorized:.3f} s, "
          f"cohen_kappa_score per resample {per_call:.3f} s, ratio {per_call / vectorized:.1f}x; "
          f"same kappas: {same}")
    figure("judge gate bootstrap: per-resample scikit-learn / vectorized (time)",
           per_call / vectorized, best=per_call / vectorized,
           detail=f"n {options.n}, {options.resamples} resamples, same kappas {same}")
    interval = np.percentile(fast, [2.5, 97.5])
    print(f"kappa {cohen_kappa_score(human, judge):.3f}, 95% interval "
          f"[{interval[0]:.3f}, {interval[1]:.3f}]")


if __name__ == "__main__":
    main()
