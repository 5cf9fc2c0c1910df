"""Traces in: import files into queues, re-route stored traces, list the queues."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ls_llmtrace.cli.common import (
    Store,
    client,
    friendly,
    keep_rejects,
    load_schema,
    main,
    queue_option,
    schema_option,
    write_rejects,
)

if TYPE_CHECKING:
    from ls_llmtrace.schema.model import AnnotationSchema


def _explicit(path: Path | None) -> AnnotationSchema | None:
    return load_schema(path) if path else None


@main.command("import")
@click.argument("trace_file", type=click.Path(dir_okay=False, path_type=Path))
@schema_option
@queue_option
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
def import_cmd(trace_file: Path, schema_path: Path | None, queue: str | None, batch_size: int,
               rejects: Path | None, strict: bool, fmt: str | None, rules: Path | None) -> None:
    """Import a trace file (native JSONL, OTLP/JSON, Langfuse, LangSmith) as tasks, each
    queue at its current schema version; re-running (or running twice at once) never
    duplicates a task."""
    from ls_llmtrace.ingest.importers import read_any
    from ls_llmtrace.ingest.routing import import_traces
    from ls_llmtrace.ingest.rules import load_rules

    schema = _explicit(schema_path)
    config = load_rules(rules) if rules else None
    items = read_any(trace_file, fmt)
    with Store() as store, click.progressbar(
            items, label=f"importing {trace_file.name}", file=sys.stderr, show_pos=True,
            show_eta=False) as bar:
        result = import_traces(client(), store, bar, queue=queue, rules=config,
                               schema=schema, batch_size=batch_size)
    summary = result.summary
    keep_rejects([str(r) for r in summary.rejected],
                  lambda path: write_rejects(summary.rejected, path), trace_file, rejects)
    projects = sorted(set(result.project_ids.values()))
    prefix = f"project {projects[0]}: " if len(projects) == 1 else ""
    click.echo(f"{prefix}{summary.line()}")
    click.echo(summary.queues_line())
    if strict and summary.rejected:
        sys.exit(4)


@main.command("route")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Queue rules (YAML).")
@schema_option
@click.option("--json", "as_json", is_flag=True)
@friendly
def route_cmd(rules: Path, schema_path: Path | None, as_json: bool) -> None:
    """Re-evaluate the queue rules over stored traces (e.g. after new thumbs-downs)."""
    from ls_llmtrace.ingest.routing import Router
    from ls_llmtrace.ingest.rules import load_rules

    config = load_rules(rules)
    with Store() as store:
        summary = Router(client(), store, config, _explicit(schema_path)).route_stored()
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
    """List every queue the store or Label Studio knows: its project, current schema
    version, tasks and annotations in Label Studio."""
    from ls_llmtrace.errors import LabelStudioError
    from ls_llmtrace.ingest.queues import listing

    try:
        ls = client()
    except LabelStudioError as exc:
        click.echo(f"warning: {exc}; counts unknown", err=True)
        ls = None
    with Store() as store:
        rows = listing(ls, store)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no queues yet: `ls-llmtrace import FILE [--rules rules.yaml]`")
    for row in rows:
        counts = ("counts unknown" if row["tasks"] is None else
                  f"{row['tasks']} tasks, {row['annotations']} annotations")
        click.echo(f"{row['queue']}\t{row['schema']}\tproject {row['project_id']}\t{counts}")
