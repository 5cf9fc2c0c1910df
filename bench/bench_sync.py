"""Benchmark: the sync against Label Studio's own snapshot export of the same project.

1. Full sync of N annotated tasks into a fresh store, timed against a JSON snapshot
   export of the same project (create, wait, download, parse) in the same run.
   Target: sync / export <= 1.5.
2. Sync with no changes and after one new annotation, for two project sizes (or
   ``--sizes``): time and API calls. Target: under 1 s, and the same number of calls
   whatever the size. ``--idle-only`` measures only these.

Run by hand (never in the test-suite):

    .venv/bin/python bench/bench_sync.py                  # starts its own Label Studio
    .venv/bin/python bench/bench_sync.py --tasks 10000 --small 1000 --page-size 1000
    .venv/bin/python bench/bench_sync.py --ls-url URL --ls-token TOKEN   # an existing one
    .venv/bin/python bench/bench_sync.py --idle-only --sizes 1000,10000,50000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import ManagedLabelStudio, free_port
from ls_llmtrace.models import Trace
from ls_llmtrace.records.sync import sync_project
from ls_llmtrace.schema.model import AnnotationSchema, load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from benchlib import figure  # noqa: E402


def annotations(i: int) -> list[dict[str, Any]]:
    def result(name: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"from_name": name, "to_name": "answer", "type": kind, "value": value}

    return [{"result": [
        result("verdict", "choices", {"choices": ["fail" if i % 3 == 0 else "pass"]}),
        result("score", "number", {"number": (i % 101) / 100}),
        result("explanation", "textarea", {"text": [f"reviewed answer {i}"]}),
    ], "lead_time": 3.0}]


def make_project(client: LabelStudioClient, schema: AnnotationSchema, n: int) -> int:
    queue = f"bench-{n}-{uuid.uuid4().hex[:6]}"
    project_id, _ = client.push_schema(schema, queue)
    for start in range(0, n, 1000):
        client.import_tasks(project_id, [
            {**trace_to_task(Trace(trace_id=f"bench-{i}", output=f"answer {i}.",
                                   system_prompt="You are a helpful assistant.",
                                   messages=[{"role": "user", "content": f"question {i}"}]),
                             schema),
             "annotations": annotations(i)} for i in range(start, min(n, start + 1000))])
    return project_id


def snapshot_export(client: LabelStudioClient, project_id: int) -> tuple[float, int]:
    """Label Studio's own way to get every annotation out: a JSON snapshot export."""
    exports = client.sdk.projects.exports
    began = time.perf_counter()
    snap = exports.create(id=project_id, title="bench")
    while True:
        status = exports.get(id=project_id, export_pk=snap.id).status
        if status == "completed":
            break
        if status == "failed":
            raise RuntimeError("the snapshot export failed")
        time.sleep(0.05)
    data = b"".join(exports.download(id=project_id, export_pk=snap.id, export_type="JSON"))
    tasks = json.loads(data)
    return time.perf_counter() - began, len(tasks)


def full_sync(client: LabelStudioClient, schema: AnnotationSchema, project_id: int,
              db: Path, page_size: int, first_export: bool = True,
              ) -> tuple[float, int, Store]:
    store = Store(f"sqlite:///{db}")
    store.remember_project(project_id, "bench", schema.id, schema.version, "bench")
    began = time.perf_counter()
    summary = sync_project(client, store, project_id, schema, page_size=page_size,
                           first_export=first_export)
    elapsed = time.perf_counter() - began
    labeled = sum(1 for r in store.records() if r.label and r.score is not None
                  and r.explanation)
    assert labeled == summary.records_written, "records lost their content"
    return elapsed, summary.records_written, store


def idle_sync(client: LabelStudioClient, schema: AnnotationSchema, project_id: int,
              store: Store) -> tuple[float, int, int]:
    began = time.perf_counter()
    summary = sync_project(client, store, project_id, schema)
    return time.perf_counter() - began, summary.requests, summary.records_written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000, help="the second, smaller size")
    parser.add_argument("--sizes", default="",
                        help="comma-separated project sizes for the idle and incremental "
                        "syncs (default: --small and --tasks)")
    parser.add_argument("--idle-only", action="store_true",
                        help="only the idle and incremental syncs (no full sync vs export)")
    parser.add_argument("--page-size", type=int, default=None,
                        help="sync page size (default: LS_LLMTRACE_SYNC_PAGE_SIZE or 1000)")
    parser.add_argument("--rounds", type=int, default=4, help="export/sync rounds (best kept)")
    parser.add_argument("--ls-url")
    parser.add_argument("--ls-token")
    args = parser.parse_args()
    page_size = args.page_size or settings.sync_page_size()
    sizes = sorted({int(n) for n in args.sizes.split(",") if n} or {args.small, args.tasks})

    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    managed = None
    if args.ls_url:
        client = LabelStudioClient(args.ls_url, args.ls_token)
    else:
        managed = ManagedLabelStudio(work / "ls", free_port(), settings.ls_bin())
        print(f"starting Label Studio at {managed.url} ...", flush=True)
        creds = managed.start(timeout=300)
        client = LabelStudioClient(managed.url, creds.token)
    try:
        began = time.perf_counter()
        projects = {n: make_project(client, schema, n) for n in sorted({*sizes, args.tasks})
                    if n in sizes or not args.idle_only}
        print(f"imported {' + '.join(str(n) for n in projects)} annotated tasks in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
        stores: dict[int, Store] = {}
        if not args.idle_only:
            stores[args.tasks] = compare_full_sync(client, schema, projects[args.tasks],
                                                   args.tasks, work, page_size, args.rounds)
        idle: dict[int, tuple[float, int]] = {}
        incremental: dict[int, float] = {}
        for n in sizes:
            pid = projects[n]
            if n not in stores:
                stores[n] = Store(f"sqlite:///{work / f'store-{n}.sqlite'}")
                stores[n].remember_project(pid, "bench", schema.id, schema.version, "bench")
                sync_project(client, stores[n], pid, schema, page_size=page_size)
            runs = [idle_sync(client, schema, pid, stores[n]) for _ in range(args.rounds)]
            idle_s, calls, written = min(runs)
            idle[n] = (idle_s, calls)
            print(f"sync with no changes, {n:>6} tasks: {idle_s * 1000:.0f} ms, "
                  f"{calls} API calls, {written} records written (target < 1 s, "
                  "same calls for every size)", flush=True)
            best_inc = float("inf")
            for round_ in range(args.rounds):  # one new annotation, then the sync
                task = next(iter(client.sdk.tasks.list(project=pid, page_size=1,
                                                       page=round_ + 1)))
                client.sdk.annotations.create(id=task.id, result=annotations(round_)[0][
                    "result"], lead_time=1.0)
                inc_s, _, inc_written = idle_sync(client, schema, pid, stores[n])
                assert inc_written >= 1, inc_written
                best_inc = min(best_inc, inc_s)
            incremental[n] = best_inc
            print(f"sync after one new annotation, {n:>6} tasks: {best_inc * 1000:.0f} ms",
                  flush=True)
        for n in sizes:
            figure(f"idle sync at {n:,} tasks (seconds)", idle[n][0], "< 1, flat",
                   unit=" s", best=idle[n][0], detail=f"{idle[n][1]} API calls")
            figure(f"incremental sync (one new annotation) at {n:,} tasks (seconds)",
                   incremental[n], "flat", unit=" s", best=incremental[n])
        low, high = sizes[0], sizes[-1]
        if low != high:
            figure(f"idle sync {high:,} / {low:,} tasks (time)", idle[high][0] / idle[low][0],
                   "flat (~1)", best=idle[high][0] / idle[low][0],
                   detail=f"API calls {idle[high][1]} / {idle[low][1]}")
            figure(f"incremental sync {high:,} / {low:,} tasks (time)",
                   incremental[high] / incremental[low], "flat (~1)",
                   best=incremental[high] / incremental[low])
        for st in stores.values():
            st.close()
    finally:
        if managed is not None:
            managed.stop()
        shutil.rmtree(work, ignore_errors=True)  # Label Studio's data and the stores
    return 0


def compare_full_sync(client: LabelStudioClient, schema: AnnotationSchema, big: int, n: int,
                      work: Path, page_size: int, rounds: int) -> Store:
    """Full first syncs (through the export, and by paging) against Label Studio's own
    snapshot export, alternating; reports the ratio and returns a synced store."""
    best_export = best_sync = best_paged = float("inf")
    store = None
    for round_ in range(rounds):
        # Alternate who goes first: the first read of a round warms Label Studio's
        # database cache for the others.
        if round_ % 2 == 0:
            export_s, exported = snapshot_export(client, big)
        sync_s, written, fresh = full_sync(client, schema, big,
                                           work / f"store-{round_}.sqlite", page_size)
        paged_s, paged_written, paged_store = full_sync(
            client, schema, big, work / f"paged-{round_}.sqlite", page_size,
            first_export=False)
        if round_ % 2 == 1:
            export_s, exported = snapshot_export(client, big)
        paged_store.close()
        assert exported == n and written == paged_written == n, \
            (exported, written, paged_written)
        print(f"round {round_ + 1}: snapshot export {export_s:.2f} s, "
              f"full sync {sync_s:.2f} s, full sync by paging {paged_s:.2f} s "
              f"({written} records)", flush=True)
        best_export, best_sync = min(best_export, export_s), min(best_sync, sync_s)
        best_paged = min(best_paged, paged_s)
        if store is not None:
            store.close()
        store = fresh
    assert store is not None
    print(f"\nfull sync of {n} annotated tasks (page size {page_size}): "
          f"{best_sync:.2f} s; snapshot export {best_export:.2f} s; "
          f"ratio {best_sync / best_export:.2f}x (target <= 1.5x)")
    figure(f"full first sync of {n:,} tasks / LS snapshot export (time)",
           best_sync / best_export, "<= 1.5", best=best_sync / best_export,
           detail=f"sync {best_sync:.2f} s, export {best_export:.2f} s")
    print(f"the same by paging the task list (LS_LLMTRACE_SYNC_FIRST_EXPORT=0, the path "
          f"a large incremental change takes): {best_paged:.2f} s, "
          f"ratio {best_paged / best_export:.2f}x")
    return store


if __name__ == "__main__":
    sys.exit(main())
