"""Failure clusters on real data: HaluEval "general" (tests/fixtures/halueval, the copy of
../shared/data/halueval), its 815 hallucinated responses as failed traces whose reviewer records are
the dataset's hallucination spans (span label ``unsupported_claim`` quoting each span, the
shape `sync` writes; built here directly, not through Label Studio). There are no
explanations, so clusters group the quoted spans. Run from the repository root:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/halueval_clusters.py [--file F] [--method M]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import cast

from ls_llmtrace.evals.clusters import Method, cluster_failures, failures_from_records
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.schema.model import load_schema

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "halueval" / \
    "general_data.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=DEFAULT)
    parser.add_argument("--method", default="auto", choices=["auto", "wordllama", "tfidf"])
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    schema = load_schema(Path(__file__).resolve().parents[1] / "label_configs" / "default.v2.yaml")
    traces: dict[str, Trace] = {}
    records: list[AnnotationRecord] = []
    for line in options.file.open(encoding="utf-8"):
        row = json.loads(line)
        trace = Trace(trace_id=f"halueval-general-{row['ID']}", output=row["chatgpt_response"],
                      messages=[{"role": "user", "content": row["user_query"]}])
        traces[trace.trace_id] = trace
        key = f"ls:1:{row['ID']}"
        failing = row["hallucination"] == "yes"
        records.append(AnnotationRecord(
            record_key=key, trace_id=trace.trace_id, schema_id=schema.id,
            schema_version=schema.version, source=Source.reviewer,
            label="fail" if failing else "pass", ls_project_id=1))
        for n, span in enumerate(row["hallucination_spans"] if failing else []):
            start = trace.output.find(span)
            records.append(AnnotationRecord(
                record_key=f"{key}:{n}", trace_id=trace.trace_id, schema_id=schema.id,
                schema_version=schema.version, source=Source.reviewer,
                scope=Scope(kind="text_range", target="answer", text=span,
                            start=start if start >= 0 else None,
                            end=start + len(span) if start >= 0 else None),
                labels=["unsupported_claim"], ls_project_id=1))
    failures, reviewed = failures_from_records(records, schema, traces.get)
    started = time.perf_counter()
    report = cluster_failures(failures, seed=options.seed, method=cast(Method, options.method))
    seconds = time.perf_counter() - started
    print(f"{len(failures)} failures of {reviewed} reviewed HaluEval rows: {report.k} clusters "
          f"({report.method}, silhouette {report.silhouette}), {seconds:.1f} s")
    for c in report.clusters:
        example = " ".join(c.examples[0]["explanation"].split())[:110]
        print(f"  {c.id} {c.name}: {c.size} ({c.share:.0%}) e.g. {c.examples[0]['trace_id']}: "
              f"\"{example}\"")


if __name__ == "__main__":
    main()
