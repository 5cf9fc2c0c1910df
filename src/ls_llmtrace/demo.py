"""``make demo``: the whole loop on the embedded defaults, safe to run twice (also after
the demo's queue has moved to a newer schema version: it is used at its current one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ls_llmtrace import settings
from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.ingest.routing import RouteSummary, import_traces
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import PredictProgress, preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import ManagedLabelStudio
from ls_llmtrace.store import Store


@dataclass
class DemoResult:
    project_id: int
    imported: RouteSummary
    predicted: PredictProgress


def demo_loop(client: LabelStudioClient, store: Store, traces: Path, backend_url: str,
              queue: str | None = None, echo: Callable[[str], None] = print,
              basic_auth: tuple[str, str] | None = None) -> DemoResult:
    """Import the traces into the queue (at its current schema version) and have the
    judge pre-annotate what it has not predicted yet."""
    name = queue or settings.default_queue()
    result = import_traces(client, store, read_any(traces), queue=name)
    echo(f"Imported {traces} into queue {name!r} (project {result.project_id}): "
         f"{result.summary.line()}")
    state = preannotate(client, result.project_id, backend_url, basic_auth)
    echo(f"Judge predictions: {state.created} created for {state.pending} tasks lacking "
         f"one ({state.total_tasks} tasks in the project, judge {state.model_version})")
    return DemoResult(result.project_id, result.summary, state)


def run_demo(traces: Path, echo: Callable[[str], None] = print) -> None:
    managed = ManagedLabelStudio()
    echo(f"Starting Label Studio at {managed.url} (first start takes about 30 s) ...")
    creds = managed.start()
    backend = ManagedBackend()
    echo(f"Starting the ML backend at {backend.url} ...")
    backend.start()
    client = LabelStudioClient(managed.url, creds.token)
    with Store() as store:
        result = demo_loop(client, store, traces, backend.url, echo=echo,
                           basic_auth=backend.auth)
    echo("")
    echo(f"Open {managed.url}/projects/{result.project_id}/data and log in as")
    echo(f"    {creds.email} / {creds.password}")
    echo("Label a few tasks (the judge's proposal is pre-filled; a fail needs your own")
    echo("explanation, and the rubric asks for a corrected output), then run:")
    echo("    .venv/bin/ls-llmtrace sync")
    echo("    .venv/bin/ls-llmtrace golden build --out golden     # a versioned golden set")
    echo("    .venv/bin/ls-llmtrace eval run golden/<set> --candidates FILE   # the gate")
    echo("Stop everything with `make down`.")
