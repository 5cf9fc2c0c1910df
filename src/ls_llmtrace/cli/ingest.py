"""Traces in: import files into queues, re-route stored traces, list the queues."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    Store,
    client,
    friendly,
    keep_rejects,
    load_schema,
    main,
    queue_option,
    schema_from,
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
@click.option("--batch-size", default=settings.IMPORT_BATCH, show_default=True,
              help="Traces per request to Label Studio once the batches have ramped up.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to keep rejected lines (default: <home>/rejects/<file>.rejects.jsonl).")
@click.option("--strict", is_flag=True, help="All or nothing: when any record is rejected, "
              "send nothing to Label Studio and exit 4.")
@click.option("--format", "fmt", type=click.Choice(["native", "otlp", "langfuse", "langsmith"]),
              default=None, help="Trace format (default: detected from the content).")
@click.option("--logs", "logs", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="OTLP log records of the same export in another file (repeatable).")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Queue rules (YAML): route traces into the queues they match "
              "instead of all into --queue.")
@click.option("--reviewers", type=click.IntRange(1, 50), default=None,
              help="Reviewers per task in --queue (Label Studio's overlap, "
              "maximum_annotations); with --rules set `reviewers:` per queue instead.")
@click.option("--dry-run", is_flag=True, help="Read and convert, send nothing.")
@click.option("--explain", is_flag=True, help="Per trace: which dialect each part was read "
              "as and what was left unread; sends nothing.")
@friendly
def import_cmd(trace_file: Path, schema_path: Path | None, queue: str | None, batch_size: int,
               rejects: Path | None, strict: bool, fmt: str | None, logs: tuple[Path, ...],
               rules: Path | None, reviewers: int | None, dry_run: bool, explain: bool
               ) -> None:
    """Import a trace file (native JSONL, OTLP/JSON or protobuf, Langfuse, LangSmith) as
    tasks, each queue at its current schema version; re-running (or running twice at once)
    never duplicates a task. Exit 4 when nothing could be imported or (with --strict) when
    any record was rejected."""
    from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
    from ls_llmtrace.ingest.importers import ImportSummary, read_any
    from ls_llmtrace.ingest.importers.detect import likely_format

    items = read_any(trace_file, fmt, list(logs) or None)
    if explain or dry_run or strict:
        # read everything first: --strict sends nothing unless every record is good
        summary = ImportSummary()
        traces = []
        dry_schema = schema_from(schema_path) if dry_run and not explain else None
        for item in items:
            summary.read += 1
            if isinstance(item, list):
                summary.rejected.extend(item)
                continue
            _count_unread(summary, item)
            if explain:
                _explain(item)
            elif dry_schema is not None:
                json.dumps(trace_to_task(item, dry_schema, ReviewOptions.from_settings()))
            else:
                traces.append(item)
        _report_rejects(summary, trace_file, rejects, fmt, likely_format)
        if explain or dry_run:
            converted = summary.read - len({(r.file, r.location) for r in summary.rejected})
            click.echo(f"dry run: read {summary.read}, would import {max(converted, 0)}, "
                       f"rejected {len(summary.rejected)}, messages left unread "
                       f"{summary.unread}; nothing sent")
            if summary.rejected and converted <= 0:
                sys.exit(4)
            return
        if summary.rejected:
            click.echo(f"--strict: {len(summary.rejected)} rejected, nothing imported")
            sys.exit(4)
        items = iter(traces)
    _send(items, trace_file, schema_path, queue, rules, batch_size, rejects, fmt, reviewers)


def _send(items: Iterator[Any], trace_file: Path, schema_path: Path | None, queue: str | None,
          rules: Path | None, batch_size: int, rejects: Path | None, fmt: str | None,
          reviewers: int | None = None) -> None:
    from ls_llmtrace.ingest.importers.detect import likely_format
    from ls_llmtrace.ingest.routing import import_traces
    from ls_llmtrace.ingest.rules import load_rules

    schema = _explicit(schema_path)
    config = load_rules(rules) if rules else None
    unread = [0]

    def counted() -> Iterator[Any]:
        for item in items:
            if not isinstance(item, list) and item.reading is not None:
                unread[0] += len(item.reading.unread)
            yield item

    with Store() as store, click.progressbar(
            counted(), label=f"importing {trace_file.name}", file=sys.stderr, show_pos=True,
            show_eta=False) as bar:
        result = import_traces(client(), store, bar, queue=queue, rules=config,
                               schema=schema, batch_size=batch_size, reviewers=reviewers)
    summary = result.summary
    summary.unread = unread[0]
    _report_rejects(summary, trace_file, rejects, fmt, likely_format)
    projects = sorted(set(result.project_ids.values()))
    prefix = f"project {projects[0]}: " if len(projects) == 1 else ""
    click.echo(f"{prefix}{summary.line()}")
    click.echo(summary.queues_line())
    if summary.rejected and not summary.imported and not summary.duplicates:
        sys.exit(4)


def _report_rejects(summary: Any, trace_file: Path, rejects: Path | None, fmt: str | None,
                    likely_format: Any) -> None:
    """Keep the rejects aside; print the first few, the count, and (when nothing was
    read well) the format the file looks like."""
    if not summary.rejected:
        return
    keep_rejects([str(r) for r in summary.rejected],
                 lambda path: write_rejects(summary.rejected, path), trace_file, rejects)
    good = summary.read - len({(r.file, r.location) for r in summary.rejected})
    if good <= 0 and fmt:
        guess = likely_format(trace_file)
        if guess and guess != fmt:
            click.echo(f"error: nothing in {trace_file} reads as --format {fmt}; it looks "
                       f"like {guess}: try --format {guess} (or leave --format out)", err=True)


def _count_unread(summary: Any, trace: Any) -> None:
    if trace.reading is not None:
        summary.unread += len(trace.reading.unread)


def _explain(trace: Any) -> None:
    click.echo(f"trace {trace.trace_id} ({trace.source}): {len(trace.messages)} messages, "
               f"system prompt {'yes' if trace.system_prompt else 'no'}, answer "
               f"{'yes' if trace.output else 'no'}, model {trace.metadata.model or '-'}")
    lines = trace.reading.lines() if trace.reading is not None else []
    for line in lines or ["(no messages read)"]:
        click.echo(f"  {line}")


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
        router = Router(client(), store, config, _explicit(schema_path))
        summary = router.route_stored()
        router.ensure_views()
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
