"""Pre-annotation: ask Label Studio to get the judge's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    client,
    friendly,
    main,
    schema_from,
    schema_option,
)
from ls_llmtrace.errors import LLMTraceError
from ls_llmtrace.labelstudio.client import project_title


@main.command("predict")
@schema_option
@click.option("--queue", default="review", show_default=True)
@click.option("--backend-url", default=None, help="ML backend URL (default: settings).")
@click.option("--batch-size", default=100, show_default=True,
              help="Tasks per request Label Studio sends to the backend.")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@friendly
def predict_cmd(schema_path: Path | None, queue: str, backend_url: str | None,
                batch_size: int, as_json: bool) -> None:
    """Ask Label Studio to pre-annotate every task this judge has not predicted yet."""
    from ls_llmtrace.judging.predict import PredictProgress, preannotate

    schema = schema_from(schema_path)
    ls = client()
    project_id = ls.find_project(project_title(schema, queue))
    if project_id is None:
        raise LLMTraceError(f"no project for queue {queue!r} and schema {schema.version_id}: "
                            "run `ls-llmtrace schema push` first")

    def progress(state: PredictProgress) -> None:
        if not as_json:
            click.echo(f"  ... {state.line()}", err=True)

    state = preannotate(ls, project_id, backend_url or settings.backend_url(),
                        settings.backend_basic_auth(), batch_size, progress)
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
