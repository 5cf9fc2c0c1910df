"""``make demo``: the whole loop on the embedded defaults, safe to run twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.ingest.pipeline import import_file, predict, push_schema
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import ManagedLabelStudio
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store


def run_demo(traces: Path, echo: Callable[[str], None] = print) -> None:
    managed = ManagedLabelStudio()
    echo(f"Starting Label Studio at {managed.url} (first start takes about 30 s) ...")
    creds = managed.start()
    backend = ManagedBackend()
    echo(f"Starting the ML backend at {backend.url} ...")
    backend.start()
    schema = load_schema(settings.default_schema_path())
    client = LabelStudioClient(managed.url, creds.token)
    with Store() as store:
        project_id, created = push_schema(client, store, schema)
        echo(f"{'Created' if created else 'Updated'} project {project_id} for schema "
             f"{schema.version_id}")
        result = import_file(client, store, traces, schema)
        echo(f"Imported {traces}: {result.summary.line()}")
        predict(client, project_id, backend.url)
        time.sleep(0.5)
        project = client.project(project_id)
        echo(f"Judge predictions in the project: {project.total_predictions_number} "
             f"on {project.task_number} tasks")
    echo("")
    echo(f"Open {managed.url}/projects/{project_id}/data and log in as")
    echo(f"    {creds.email} / {creds.password}")
    echo("Label a few tasks (the judge's proposal is pre-filled; fail needs an explanation")
    echo("and a corrected output), then run:")
    echo("    .venv/bin/ls-llmtrace sync")
    echo("    .venv/bin/ls-llmtrace golden export -o golden/golden.v0.jsonl")
    echo("Stop everything with `make down`.")
