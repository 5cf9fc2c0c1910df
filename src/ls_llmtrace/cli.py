"""The ``ls-llmtrace`` command line: parses, calls the library, prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import settings
from .backendserver import ManagedBackend
from .errors import LLMTraceError
from .golden import export_golden
from .importers import ImportSummary, write_rejects
from .lsclient import LabelStudioClient, project_title
from .lsserver import ManagedLabelStudio
from .schema import AnnotationSchema, load_schema, load_schema_dir
from .store import Store

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn our errors into one line and a meaningful exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LLMTraceError as exc:
            if settings.debug():
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def client() -> LabelStudioClient:
    """A client for the configured Label Studio, or the managed one's token."""
    token = settings.ls_token()
    if not token:
        managed = ManagedLabelStudio()
        if managed.credentials_file.exists():
            token = managed.credentials().token
    return LabelStudioClient(settings.ls_url(), token)


def schema_option(fn: F) -> F:
    return click.option(
        "--schema", "schema_path", type=click.Path(dir_okay=False, path_type=Path),
        default=None, help="Schema file (default: label_configs/default.v1.yaml).",
    )(fn)


def _schema(path: Path | None) -> AnnotationSchema:
    return load_schema(path or settings.default_schema_path())


@click.group(help="ls-llmtrace: tie LLM feedback to traces through Label Studio.")
@click.version_option(package_name="ls-llmtrace")
def main() -> None:
    pass


# Label Studio and backend processes ----------------------------------------------------

@main.group("ls")
def ls_group() -> None:
    """Run the managed local Label Studio (own virtualenv, loopback, data in LS_LLMTRACE_HOME)."""


@ls_group.command("up")
@friendly
def ls_up() -> None:
    """Start Label Studio (or find it running) and print how to log in."""
    managed = ManagedLabelStudio()
    creds = managed.start()
    click.echo(f"Label Studio is up at {managed.url}  login {creds.email} / {creds.password}")


@ls_group.command("down")
@friendly
def ls_down() -> None:
    """Stop the managed Label Studio."""
    click.echo("stopped" if ManagedLabelStudio().stop() else "was not running")


@ls_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def ls_status(as_json: bool) -> None:
    """Is the managed Label Studio running and answering?"""
    status = ManagedLabelStudio().status()
    if as_json:
        click.echo(json.dumps(status))
    else:
        state = "running" if status["answers"] else "not running"
        click.echo(f"Label Studio {state} at {status['url']} (data {status['data_dir']})")
    sys.exit(0 if status["answers"] else 1)


@main.group("backend")
def backend_group() -> None:
    """Run the managed ML backend (the judge) that Label Studio calls."""


@backend_group.command("up")
@friendly
def backend_up() -> None:
    """Start the ML backend in the background."""
    click.echo(f"ML backend is up at {ManagedBackend().start()}")


@backend_group.command("down")
def backend_down() -> None:
    """Stop the ML backend."""
    click.echo("stopped" if ManagedBackend().stop() else "was not running")


# schema ---------------------------------------------------------------------------------

@main.group("schema")
def schema_group() -> None:
    """Annotation schemas and their Label Studio configs."""


@schema_group.command("push")
@click.argument("schema_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--queue", default="review", show_default=True, help="Queue (project) name.")
@friendly
def schema_push(schema_file: Path | None, queue: str) -> None:
    """Create or update the Label Studio project of a schema version."""
    from .pipeline import push_schema

    schema = _schema(schema_file)
    with Store() as store:
        project_id, created = push_schema(client(), store, schema, queue)
    verb = "created" if created else "updated"
    click.echo(f"{verb} project {project_id} '{project_title(schema, queue)}'")


@schema_group.command("generate")
@click.argument("directory", default="label_configs",
                type=click.Path(file_okay=False, path_type=Path))
@friendly
def schema_generate(directory: Path) -> None:
    """Write the label config XML beside every schema file in DIRECTORY."""
    from .labelconfig import write_label_config

    for schema in load_schema_dir(directory).values():
        click.echo(f"wrote {write_label_config(schema, directory)}")


# import / predict / sync / golden ---------------------------------------------------------

@main.command("import")
@click.argument("trace_file", type=click.Path(dir_okay=False, path_type=Path))
@schema_option
@click.option("--queue", default="review", show_default=True)
@click.option("--batch-size", default=1000, show_default=True)
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to keep rejected lines (default: <home>/rejects/<file>.rejects.jsonl).")
@click.option("--strict", is_flag=True, help="Fail (exit 4) if any line is rejected.")
@friendly
def import_cmd(trace_file: Path, schema_path: Path | None, queue: str, batch_size: int,
               rejects: Path | None, strict: bool) -> None:
    """Import a native JSONL trace file as tasks; re-running never duplicates a task."""
    from .pipeline import import_file

    schema = _schema(schema_path)

    def progress(summary: ImportSummary) -> None:
        click.echo(f"  ... {summary.line()}", err=True)

    with Store() as store:
        result = import_file(client(), store, trace_file, schema, queue, batch_size, progress)
    summary = result.summary
    for reject in summary.rejected:
        click.echo(f"rejected: {reject}", err=True)
    if summary.rejected:
        path = rejects or settings.home() / "rejects" / f"{trace_file.name}.rejects.jsonl"
        write_rejects(summary.rejected, path)
        click.echo(f"rejected lines kept in {path}", err=True)
    click.echo(f"project {result.project_id}: {summary.line()}")
    if strict and summary.rejected:
        sys.exit(4)


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
    from .preannotate import PredictProgress, preannotate

    schema = _schema(schema_path)
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


@main.command("sync")
@click.option("--schemas", "schema_dir", default="label_configs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory holding the schema files of the synced projects.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def sync_cmd(schema_dir: Path, as_json: bool) -> None:
    """Read new and changed annotations into the store (incremental, idempotent)."""
    from .pipeline import sync

    schemas = load_schema_dir(schema_dir)
    with Store() as store:
        summaries = sync(client(), store, schemas)
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in summaries]))
        return
    if not summaries:
        click.echo("no projects to sync: import traces first (`ls-llmtrace import FILE`)")
    for summary in summaries:
        click.echo(summary.line())


@main.command("records")
@click.option("--source", default=None)
@click.option("--label", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly
def records_cmd(source: str | None, label: str | None, as_json: bool) -> None:
    """List stored annotation records."""
    with Store() as store:
        records = store.records(source=source, label=label)
    for record in records:
        if as_json:
            click.echo(record.model_dump_json())
        else:
            click.echo(f"{record.trace_id}\t{record.label}\t{record.score}\t{record.author}\t"
                       f"{(record.explanation or '')[:60]!r}")


@main.group("golden")
def golden_group() -> None:
    """Golden sets: regression cases from annotated traces."""


@golden_group.command("export")
@schema_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("golden/golden.v0.jsonl"), show_default=True)
@friendly
def golden_export(schema_path: Path | None, output: Path) -> None:
    """Write the failed traces with their corrected outputs as JSONL."""
    with Store() as store:
        count = export_golden(store, _schema(schema_path), output)
    click.echo(f"wrote {count} cases to {output}")


# demo ---------------------------------------------------------------------------------------

@main.command("demo")
@click.option("--traces", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("examples/sample_traces.jsonl"), show_default=True)
@friendly
def demo_cmd(traces: Path) -> None:
    """Start everything, push schema v1, import the samples, get the judge's predictions."""
    from .demo import run_demo

    run_demo(traces, echo=click.echo)


@main.command("down")
def down_cmd() -> None:
    """Stop the ML backend and Label Studio started by `demo`."""
    click.echo("backend: " + ("stopped" if ManagedBackend().stop() else "was not running"))
    click.echo("Label Studio: " + ("stopped" if ManagedLabelStudio().stop() else "was not running"))
