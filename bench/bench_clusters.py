"""Failure clusters: the planted modes found again (purity, recall) and clustering time,
wordllama embeddings against TF-IDF on the same data, in the same script (ratios, not a
timed test). The planted set is tests/support/planted_modes.py (7 modes, 10-40 traces each,
seeded); "explanations only" drops the categories, span labels, quotes and output diff, so
only the varied words of the explanations are left. The 5,000-failure run scales the same
generator up. Run from the repository root:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_clusters.py [--n 5000] [--seeds 5] [--no-merge]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.planted_modes import planted  # noqa: E402

from benchlib import figure  # noqa: E402
from ls_llmtrace.evals.clusters import (  # noqa: E402
    Failure,
    Method,
    cluster_failures,
    embed,
    failures_from_records,
    purity_recall,
)
from ls_llmtrace.schema.model import load_schema  # noqa: E402

SCHEMA = load_schema(ROOT / "label_configs" / "default.v2.yaml")


def failures(seed: int, sizes: tuple[int, int] = (10, 40)) -> tuple[list[Failure], dict[str, str]]:
    traces, records, truth = planted(seed, sizes)
    by_id = {t.trace_id: t for t in traces}
    return failures_from_records(records, SCHEMA, by_id.get)[0], truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-merge", action="store_true",
                        help="KMeans clusters as they are (no near-duplicate merging)")
    options = parser.parse_args()
    embed(["warm up"], "wordllama")  # load the weights once, outside the timings

    print(f"planted modes, {options.seeds} seeds (purity / recall / k, mean):")
    for text_kind in ("full text", "explanations only"):
        for method in ("wordllama", "tfidf"):
            rows = []
            for seed in range(options.seeds):
                found, truth = failures(seed)
                if text_kind == "explanations only":
                    found = [dataclasses.replace(f, text=f.explanation or "", categories=(),
                                                 span_labels=(), quotes="") for f in found]
                report = cluster_failures(found, seed=0, method=cast(Method, method),
                                          merge=None if options.no_merge else "auto")
                rows.append((*purity_recall(report.assignments, truth), report.k, len(found)))
            purity = statistics.mean(r[0] for r in rows)
            recall = statistics.mean(r[1] for r in rows)
            print(f"  {text_kind:18} {method:9}: purity {purity:.3f} (min "
                  f"{min(r[0] for r in rows):.3f}), recall {recall:.3f} (min "
                  f"{min(r[1] for r in rows):.3f}), k {statistics.mean(r[2] for r in rows):.1f}"
                  f", failures {statistics.mean(r[3] for r in rows):.0f}")

    per_mode = options.n // 7 + 1
    big, truth = failures(0, (per_mode, per_mode))
    big = big[:options.n]
    print(f"\n{len(big)} failures (7 planted modes), embed + choose k (2..20) + name:")
    seconds = {}
    for method in ("wordllama", "tfidf"):
        started = time.perf_counter()
        vectors, _, _ = embed([f.text for f in big], cast(Method, method))
        embedded = time.perf_counter() - started
        report = cluster_failures(big, seed=0, method=cast(Method, method))
        total = time.perf_counter() - started - embedded
        seconds[method] = total
        purity, recall = purity_recall(report.assignments, {f.trace_id: truth[f.trace_id]
                                                            for f in big})
        print(f"  {method:9}: embedding alone {embedded:.2f} s ({vectors.shape[1]} dims), "
              f"whole clustering {total:.2f} s, k {report.k}, purity {purity:.3f}, "
              f"recall {recall:.3f}")
    print(f"  wordllama / tfidf time: {seconds['wordllama'] / seconds['tfidf']:.2f}x")
    figure(f"clusters of {len(big):,} failures: wordllama / TF-IDF (time)",
           seconds["wordllama"] / seconds["tfidf"], best=seconds["wordllama"] / seconds["tfidf"],
           detail=f"wordllama {seconds['wordllama']:.2f} s, tfidf {seconds['tfidf']:.2f} s")


if __name__ == "__main__":
    main()
