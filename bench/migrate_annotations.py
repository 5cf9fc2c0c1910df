"""How much the journaled, crash-safe migration costs over the bare Label Studio writes.

Run by hand (starts its own Label Studio in a temp dir):

    .venv/bin/python bench/migrate_annotations.py [N]

Two projects with the same N annotated tasks under tests/schemas/triage.v1.yaml. Baseline:
one ``annotations.update`` per annotation with the already-computed v2 result (the least
any migration must do). Measured: ``migrate_project`` (list, plan, journal, rewrite with
done-markers, re-map records, move the config). Prints both and their ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.rewrite import rewrite_result
from ls_llmtrace.labelstudio.server import ManagedLabelStudio, free_port
from ls_llmtrace.models import Trace
from ls_llmtrace.records.migrate import migrate_project
from ls_llmtrace.schema.migration import load_migration
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "tests" / "schemas"


def _annotate(client: LabelStudioClient, project_id: int) -> None:
    for i, (task_id, _) in enumerate(client.task_trace_ids(project_id)):
        client.sdk.annotations.create(id=task_id, result=[
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": ["fail"]}},
            {"from_name": "categories", "to_name": "answer", "type": "choices",
             "value": {"choices": [["hallucination", "incomplete", "truncated"][i % 3]]}},
            {"from_name": "score", "to_name": "answer", "type": "number",
             "value": {"number": (i % 11) / 10}}])


def main(n: int) -> None:
    v1 = load_schema(SCHEMAS / "triage.v1.yaml")
    v2 = load_schema(SCHEMAS / "triage.v2.yaml")
    migration = load_migration(SCHEMAS / "migrations" / "triage.v1-to-v2.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedLabelStudio(Path(tmp) / "ls", free_port(), settings.ls_bin())
        creds = server.start(timeout=300)
        try:
            client = LabelStudioClient(server.url, creds.token)
            store = Store(f"sqlite:///{Path(tmp) / 'store.sqlite'}")
            traces = [Trace(trace_id=f"bench-{i}", output=f"answer {i}") for i in range(n)]
            base = import_traces(client, store, traces, queue="baseline", schema=v1).project_id
            measured = import_traces(client, store, traces, queue="measured", schema=v1).project_id
            _annotate(client, base)
            _annotate(client, measured)

            targets = []
            for task in client.all_tasks(base):
                for annotation in task["annotations"]:
                    targets.append((annotation["id"], rewrite_result(
                        annotation["result"], v1, v2, migration).result))
            started = time.perf_counter()
            for annotation_id, result in targets:
                client.update_annotation(annotation_id, result)
            baseline = time.perf_counter() - started

            started = time.perf_counter()
            summary = migrate_project(client, store, measured, "measured", v1, v2, migration)
            ours = time.perf_counter() - started
            assert summary.rewritten == n, summary.lines()
            print(f"annotations: {n}")
            print(f"baseline (bare annotations.update loop): {baseline:.2f} s "
                  f"({n / baseline:.0f}/s)")
            print(f"migrate_project (journaled, records, config): {ours:.2f} s "
                  f"({n / ours:.0f}/s)")
            print(f"ratio: {ours / baseline:.2f}x")
            store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
