"""Pre-annotation: ask Label Studio to get the judge's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    Store,
    client,
    friendly,
    main,
    queue_option,
    schema_option,
)
from ls_llmtrace.errors import LLMTraceError


@main.command("predict")
@schema_option
@queue_option
@click.option("--backend-url", default=None, help="ML backend URL (default: settings).")
@click.option("--batch-size", default=100, show_default=True,
              help="Tasks per request Label Studio sends to the backend.")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@friendly
def predict_cmd(schema_path: Path | None, queue: str | None, backend_url: str | None,
                batch_size: int, as_json: bool) -> None:
    """Ask Label Studio to pre-annotate every task this judge has not predicted yet, in
    the queue's project at its current schema version."""
    from ls_llmtrace.ingest import queues
    from ls_llmtrace.judging.managed import client_auth
    from ls_llmtrace.judging.predict import PredictProgress, preannotate
    from ls_llmtrace.schema.model import load_schema

    name = queue or settings.default_queue()
    explicit = load_schema(schema_path) if schema_path else None
    ls = client()
    with Store() as store:
        found = queues.resolve(ls, store, name, explicit.id if explicit else None)
    if found is None:
        raise LLMTraceError(f"no queue {name!r}" + (f" of schema {explicit.id}" if explicit
                                                    else "")
                            + f": import traces first (`ls-llmtrace import FILE --queue "
                            f"{name}`) or run `ls-llmtrace schema push`")
    if explicit is not None:
        queues.check_version(found, explicit)
    project_id = found.project_id

    def progress(state: PredictProgress) -> None:
        if not as_json:
            click.echo(f"  ... {state.line()}", err=True)

    state = preannotate(ls, project_id, backend_url or settings.backend_url(),
                        client_auth(), batch_size, progress)
    if as_json:
        click.echo(json.dumps({"project": project_id, "tasks": state.total_tasks,
                               "pending": state.pending, "created": state.created,
                               "model_version": state.model_version}))
        return
    missing = state.pending - state.created
    click.echo(f"project {project_id}: {state.created} predictions created for "
               f"{state.pending} tasks lacking one from {state.model_version}"
               + (f"; {missing} still without (see the backend log and /metrics)"
                  if missing > 0 else ""))
