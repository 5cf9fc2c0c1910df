"""Benchmark: record upserts into the store against ``executemany`` of the same rows, on
SQLite and on PostgreSQL, in the same run.

N records (default 100,000; feedback signals of ~1,000 traces each with 100) are written
into a fresh store per run, in transactions of 1,000 (an import batch):

* **batched**: ``Store.upsert_records`` (what imports and feedback files use): one read
  of the stored bodies per chunk, then one batched ``INSERT ... ON CONFLICT`` (on
  PostgreSQL psycopg's ``executemany`` in pipeline mode);
* **per record**: ``Store.upsert_record`` once per record (the sync's path);
* **baseline**: the same rows built from the same records, then a plain ``executemany``
  ``INSERT`` into the same table (no conflict handling, no change detection).

Runs alternate, best of ``--runs`` kept. PostgreSQL is a throwaway cluster (Debian's
packages, as the tests use; skipped when missing). Reports batched/baseline (goal <=
1.5x) per engine. Run from the repository root:

    .venv/bin/python bench/bench_store.py [--count 100000] [--runs 3] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pgcluster import PgCluster, pg_bin_dir  # noqa: E402

from benchlib import figure, ratio, timed  # noqa: E402
from ls_llmtrace.models import AnnotationRecord, Source  # noqa: E402
from ls_llmtrace.store import Store  # noqa: E402

BATCH = 1000
COLUMNS = ("record_key, trace_id, schema_id, schema_version, source, label, score, author, "
           "ls_project_id, ls_task_id, ls_annotation_id, deleted, updated_at, body, "
           "created_at, model_version, product_area, user_segment, trace_linked")


def make_records(n: int) -> list[AnnotationRecord]:
    base = datetime(2025, 6, 1, tzinfo=UTC)
    return [AnnotationRecord(
        record_key=f"feedback:app:{i:08d}", trace_id=f"trace-{i // 100:06d}",
        schema_id="default", schema_version=1, source=Source.end_user,
        label="fail" if i % 3 == 0 else "pass", score=(i % 101) / 100,
        author=f"user-{i % 977}", explanation=f"thumbs {'down' if i % 3 == 0 else 'up'} #{i}",
        created_at=base + timedelta(seconds=i), updated_at=base + timedelta(seconds=i),
        metadata={"model_version": f"m{i % 4}", "product_area": "orders",
                  "user_segment": "pro"}) for i in range(n)]


def rows(records: list[AnnotationRecord]) -> list[tuple[object, ...]]:
    out = []
    for r in records:
        when = r.created_at.isoformat() if r.created_at else None
        out.append((r.record_key, r.trace_id, r.schema_id, r.schema_version, r.source.value,
                    r.label, r.score, r.author, r.ls_project_id, r.ls_task_id,
                    r.ls_annotation_id, 0, when, r.model_dump_json(), when,
                    r.metadata.get("model_version"), r.metadata.get("product_area"),
                    r.metadata.get("user_segment"), 0))
    return out


def chunks(records: list[AnnotationRecord]) -> list[list[AnnotationRecord]]:
    return [records[i:i + BATCH] for i in range(0, len(records), BATCH)]


def batched(store: Store, records: list[AnnotationRecord]) -> int:
    if not hasattr(Store, "upsert_records"):  # a store from before batched upserts
        return per_record(store, records)
    written = 0
    for chunk in chunks(records):
        with store.transaction() as conn:
            written += Store.upsert_records(conn, chunk)  # type: ignore[attr-defined]
    return written


def per_record(store: Store, records: list[AnnotationRecord]) -> int:
    written = 0
    for chunk in chunks(records):
        with store.transaction() as conn:
            for record in chunk:
                written += Store.upsert_record(conn, record)
    return written


def baseline(store: Store, records: list[AnnotationRecord]) -> int:
    marks = ", ".join("?" * 19)
    for chunk in chunks(records):
        with store.transaction() as conn:
            conn.executemany(f"INSERT INTO records ({COLUMNS}) VALUES ({marks})", rows(chunk))
    return len(records)


def run_engine(name: str, fresh: Callable[[], str], records: list[AnnotationRecord],
               runs: int, with_per_record: bool) -> None:
    ways: dict[str, Callable[[Store, list[AnnotationRecord]], int]] = {
        "batched": batched, "baseline": baseline}
    if with_per_record:
        ways["per record"] = per_record
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    for run in range(runs):
        order = list(ways.items())
        for key, fn in order if run % 2 == 0 else order[::-1]:
            store = Store(fresh())
            try:
                written, took = timed(lambda fn=fn, s=store: fn(s, records))
            finally:
                store.close()
            assert written == len(records), (key, written)
            seconds[key].append(took)
        print(f"[{name}] run {run + 1}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in seconds.items()), flush=True)
    n = len(records)
    best, median = ratio(seconds, "batched", "baseline")
    figure(f"{name} store: {n:,} record upserts / executemany", best, "<= 1.5",
           best=best, median=median, detail=f"upserts {min(seconds['batched']):.2f} s, "
           f"executemany {min(seconds['baseline']):.2f} s")
    if with_per_record:
        best, median = ratio(seconds, "per record", "baseline")
        figure(f"{name} store: {n:,} single-record upserts (the sync's path) / executemany",
               best, best=best, median=median,
               detail=f"{min(seconds['per record']):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--no-per-record", action="store_true",
                        help="skip the single-record path (slow on PostgreSQL)")
    args = parser.parse_args()
    records = make_records(args.count)
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in engines:
            counter = iter(range(10**6))
            run_engine("SQLite", lambda: f"sqlite:///{tmp}/s{next(counter)}.sqlite", records,
                       args.runs, not args.no_per_record)
        if "postgresql" in engines:
            bin_dir = pg_bin_dir()
            if bin_dir is None:
                print("PostgreSQL is not installed: skipped (make setup installs it)")
                return 0
            cluster = PgCluster(bin_dir)
            cluster.start()
            urls: list[str] = []

            def fresh() -> str:
                for old in urls:
                    cluster.drop_database(old)
                urls.clear()
                urls.append(cluster.create_database())
                return urls[-1]
            try:
                run_engine("PostgreSQL", fresh, records, args.runs, not args.no_per_record)
            finally:
                cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
