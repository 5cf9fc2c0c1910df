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
from .importers import write_rejects
from .lsclient import LabelStudioClient, project_title
from .lsserver import ManagedLabelStudio
from .models import Source
from .schema import AnnotationSchema, load_schema, load_schema_dir
from .store import Store

F = TypeVar("F", bound=Callable[..., Any])
_TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]


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


def _keep_rejects(lines: list[str], write: Callable[[Path], None], source: Path,
                  explicit: Path | None) -> None:
    """Report rejected items and keep them aside (default <home>/rejects/<file>.rejects.jsonl)."""
    for line in lines:
        click.echo(f"rejected: {line}", err=True)
    if lines:
        path = explicit or settings.home() / "rejects" / f"{source.name}.rejects.jsonl"
        write(path)
        click.echo(f"rejected lines kept in {path}", err=True)


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
@click.option("--migration", "migration_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Migration file for an incompatible version (rewrites annotations).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def schema_push(schema_file: Path | None, queue: str, migration_file: Path | None,
                dry_run: bool, as_json: bool) -> None:
    """Create or update the Label Studio project of a schema version.

    A queue whose project is at an older version of the schema is moved to this version
    in place; an incompatible change is refused (exit 5, naming what would be orphaned)
    unless --migration is given. Older versions are read from the schema file's folder.
    """
    from .migrate import load_migration, push_schema_version

    path = schema_file or settings.default_schema_path()
    schema = load_schema(path)
    known = load_schema_dir(path.parent)
    migration = load_migration(migration_file) if migration_file else None
    with Store() as store:
        outcome = push_schema_version(client(), store, schema, queue, known, migration,
                                      dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({
            "project_id": outcome.project_id, "created": outcome.created,
            "from_version": outcome.from_version, "changes": [
                c.as_dict() for c in outcome.changes],
            "migration": outcome.migrated.as_dict() if outcome.migrated else None}))
        return
    for change in outcome.changes:
        click.echo(change.line())
    if outcome.note:
        click.echo(outcome.note)
    if outcome.migrated is not None:
        for line in outcome.migrated.lines():
            click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was written")
        return
    verb = "created" if outcome.created else "updated"
    click.echo(f"{verb} project {outcome.project_id} '{project_title(schema, queue)}'")


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
@click.option("--format", "fmt", type=click.Choice(["native", "otlp", "langfuse", "langsmith"]),
              default=None, help="Trace format (default: detected from the content).")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Queue rules (YAML): route traces into the queues they match "
              "instead of all into --queue.")
@friendly
def import_cmd(trace_file: Path, schema_path: Path | None, queue: str, batch_size: int,
               rejects: Path | None, strict: bool, fmt: str | None, rules: Path | None) -> None:
    """Import a trace file (native JSONL, OTLP/JSON, Langfuse, LangSmith) as tasks;
    re-running (or running twice at once) never duplicates a task."""
    from .importers import read_any
    from .queues import load_rules, single_queue
    from .routing import Router

    schema = _schema(schema_path)
    config = load_rules(rules) if rules else single_queue(queue)
    items = read_any(trace_file, fmt)
    with Store() as store, click.progressbar(
            items, label=f"importing {trace_file.name}", file=sys.stderr, show_pos=True,
            show_eta=False) as bar:
        router = Router(client(), store, schema, config)
        summary = router.ingest(bar, batch_size)
    _keep_rejects([str(r) for r in summary.rejected],
                  lambda path: write_rejects(summary.rejected, path), trace_file, rejects)
    projects = sorted(set(router.project_ids.values()))
    prefix = f"project {projects[0]}: " if len(projects) == 1 else ""
    click.echo(f"{prefix}{summary.line()}")
    click.echo(summary.queues_line())
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
@click.option("--source", default=None, type=click.Choice([s.value for s in Source]),
              help="Where the feedback came from.")
@click.option("--label", default=None)
@click.option("--schema-id", default=None)
@click.option("--schema-version", default=None, type=int)
@click.option("--model-version", default=None, help="The trace's model version.")
@click.option("--product-area", default=None)
@click.option("--user-segment", default=None)
@click.option("--since", default=None, type=click.DateTime(_TIME_FORMATS),
              help="Given at or after (UTC unless an offset is given).")
@click.option("--until", default=None, type=click.DateTime(_TIME_FORMATS), help="Given before.")
@click.option("--trace", "trace_id", default=None, help="One trace's records.")
@click.option("--unlinked", is_flag=True, help="Only signals whose trace is not stored yet.")
@click.option("--deleted", "include_deleted", is_flag=True, help="Include deleted records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
@friendly
def records_cmd(source: str | None, label: str | None, schema_id: str | None,
                schema_version: int | None, model_version: str | None,
                product_area: str | None, user_segment: str | None, since: Any, until: Any,
                trace_id: str | None, unlinked: bool, include_deleted: bool,
                as_json: bool) -> None:
    """List stored annotation records from every source, filtered."""
    from .store import RecordFilter
    from .timeutil import to_utc

    where = RecordFilter(source=source, label=label, schema_id=schema_id,
                         schema_version=schema_version, model_version=model_version,
                         product_area=product_area, user_segment=user_segment,
                         since=to_utc(since), until=to_utc(until), trace_id=trace_id,
                         unlinked=unlinked, include_deleted=include_deleted)
    with Store() as store:
        records = store.records(where=where)
    for record in records:
        if as_json:
            click.echo(record.model_dump_json())
        else:
            click.echo(f"{record.trace_id}\t{record.source.value}\t{record.label}\t"
                       f"{record.score}\t{record.author}\t{(record.explanation or '')[:60]!r}")


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


# feedback channels and statistics (issue 6) ----------------------------------------------

@main.group("feedback")
def feedback_group() -> None:
    """Feedback signals (thumbs, support tickets, QA reviews, evaluator scores) -> records."""


@feedback_group.command("import")
@click.argument("feedback_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--channel", default=None, type=click.Choice(["thumbs", "support", "qa",
                                                            "evaluator"]),
              help="Channel of items that do not name theirs (e.g. a CSV of one channel).")
@click.option("--format", "fmt", default=None, type=click.Choice(["jsonl", "csv"]),
              help="Default: by the file's extension (.csv, else JSONL).")
@click.option("--mapping", "mapping_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Feedback mapping file (default: LS_LLMTRACE_FEEDBACK_MAPPING or the "
                   "packaged one).")
@click.option("--schemas", "schema_dir", default="label_configs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to keep rejected lines (default: <home>/rejects/<file>.rejects.jsonl).")
@click.option("--strict", is_flag=True, help="Exit 4 if any line is rejected.")
@friendly
def feedback_import(feedback_file: Path, channel: str | None, fmt: str | None,
                    mapping_path: Path | None, schema_dir: Path, rejects: Path | None,
                    strict: bool) -> None:
    """Import feedback signals from a JSONL or CSV file; re-importing changes nothing."""
    from .feedback import ingest, load_mapping, read_feedback_file, write_rejects
    from .feedbackapi import _schema_for

    mapping = load_mapping(mapping_path)
    schemas = load_schema_dir(schema_dir) if schema_dir.is_dir() else {}
    schema = _schema_for(mapping, schemas)
    with Store() as store:
        result = ingest(store, read_feedback_file(feedback_file, channel, fmt), mapping, schema)
    _keep_rejects([f"{r.where}: {r.reason}" for r in result.rejected],
                  lambda path: write_rejects(result.rejected, path), feedback_file, rejects)
    click.echo(f"{feedback_file}: {result.line()}")
    if strict and result.rejected:
        sys.exit(4)


@feedback_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9091, show_default=True, type=int)
@click.option("--schemas", "schema_dir", default="label_configs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@friendly
def feedback_serve(host: str, port: int, schema_dir: Path) -> None:
    """Serve the Feedback API (POST /feedback, POST /ls-webhook) until interrupted."""
    import contextlib

    from werkzeug.serving import make_server

    from .feedbackapi import create_app

    if not settings.feedback_token():
        click.echo("warning: LS_LLMTRACE_FEEDBACK_TOKEN is not set: /feedback refuses "
                   "every request", err=True)
    server = make_server(host, port, create_app(schemas_dir=schema_dir), threaded=True)
    click.echo(f"Feedback API at http://{host}:{port}/feedback (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@feedback_group.command("mapping")
@friendly
def feedback_mapping() -> None:
    """Print the feedback mapping file in use (copy it to edit)."""
    from .feedback import load_mapping

    path = settings.feedback_mapping_path()
    load_mapping(path)  # checked before it is shown
    click.echo(f"# {path}")
    click.echo(path.read_text(encoding="utf-8"), nl=False)


@main.command("stats")
@click.option("--schemas", "schema_dir", default="label_configs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Schema files: their failing labels decide what a failure is.")
@click.option("--since", default=None, type=click.DateTime(_TIME_FORMATS))
@click.option("--until", default=None, type=click.DateTime(_TIME_FORMATS))
@click.option("--json", "as_json", is_flag=True)
@friendly
def stats_cmd(schema_dir: Path, since: Any, until: Any, as_json: bool) -> None:
    """Failure rates and counts by model version, product area and user segment, every
    feedback source side by side."""
    from .stats import compute_stats, failing_labels, format_stats
    from .store import RecordFilter
    from .timeutil import to_utc

    schemas = load_schema_dir(schema_dir) if schema_dir.is_dir() else {}
    with Store() as store:
        facts = store.record_facts(RecordFilter(since=to_utc(since), until=to_utc(until)))
    stats = compute_stats(facts, failing_labels(schemas))
    click.echo(json.dumps(stats, indent=2) if as_json else format_stats(stats))
# schema diff and migration log (issue 3) ----------------------------------------------------

@schema_group.command("diff")
@click.argument("old_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--migration", "migration_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Name renames, merges and splits from this migration file, and check it.")
@click.option("--json", "as_json", is_flag=True)
def schema_diff(old_file: Path, new_file: Path, migration_file: Path | None,
                as_json: bool) -> None:
    """List the changes from OLD to NEW and classify them.

    Exit 0: no change; 1: compatible changes only; 4: incompatible changes (a push over a
    project with annotations needs a migration); 2: a file is invalid.
    """
    from .migrate import check_migration, load_migration
    from .schemadiff import diff_schemas, exit_code

    @friendly
    def run() -> int:
        old, new = load_schema(old_file), load_schema(new_file)
        migration = load_migration(migration_file) if migration_file else None
        if migration is not None:
            changes = check_migration(migration, old, new)
        else:
            changes = diff_schemas(old, new)
        if as_json:
            click.echo(json.dumps([c.as_dict() for c in changes]))
        else:
            for change in changes:
                click.echo(change.line())
            if not changes:
                click.echo(f"{old.version_id} and {new.version_id} ask the same")
        return exit_code(changes)

    sys.exit(run())


@schema_group.command("migrations")
@click.option("--reviews", is_flag=True, help="List the review queue instead of the log.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def schema_migrations(reviews: bool, as_json: bool) -> None:
    """The log of applied schema migrations (or their review queue)."""
    from .migrate import Journal

    with Store() as store:
        journal = Journal(store)
        rows = journal.reviews() if reviews else journal.log()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("none")
    for row in rows:
        if reviews:
            click.echo(f"{row['run_id']}\tannotation {row['annotation_id']}\t{row['field']} "
                       f"{row['value']!r}\t{row['reason']}")
        else:
            click.echo(f"{row['finished_at']}\tproject {row['project_id']}\t"
                       f"{row['schema_id']} v{row['from_version']} -> v{row['to_version']}\t"
                       f"{row['migration_name']}")



# queues (issue 4) ---------------------------------------------------------------------------

@main.command("route")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Queue rules (YAML).")
@schema_option
@click.option("--json", "as_json", is_flag=True)
@friendly
def route_cmd(rules: Path, schema_path: Path | None, as_json: bool) -> None:
    """Re-evaluate the queue rules over stored traces (e.g. after new thumbs-downs)."""
    from .queues import load_rules
    from .routing import Router

    config = load_rules(rules)
    with Store() as store:
        summary = Router(client(), store, _schema(schema_path), config).route_stored()
    if as_json:
        click.echo(json.dumps({"traces": summary.read, "routed": summary.imported,
                               "already_queued": summary.duplicates,
                               "matched_no_queue": summary.not_routed,
                               "per_queue": summary.per_queue}))
        return
    click.echo(f"{summary.read} traces: {summary.imported} routed into new queues, "
               f"{summary.duplicates} already queued")
    click.echo(summary.queues_line())


@main.command("queues")
@click.option("--json", "as_json", is_flag=True)
@friendly
def queues_cmd(as_json: bool) -> None:
    """List the review queues: project, items claimed, tasks in Label Studio."""
    from .routing import queue_counts

    with Store() as store:
        rows = queue_counts(store)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no queues yet: `ls-llmtrace import FILE [--rules rules.yaml]`")
    for row in rows:
        click.echo(f"{row['queue']}\tproject {row['project_id']}\t{row['tasks']} tasks\t"
                   f"{row['title'] or ''}")
