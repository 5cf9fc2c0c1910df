"""Traces from, and reviewer labels back to, the tracing tools a team uses (Phoenix, MLflow)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from ls_llmtrace.cli.common import TIME_FORMATS, Store, client, friendly, main, queue_option


@main.group("pull")
def pull_group() -> None:
    """Pull traces from a tracing tool into queues (incremental: a cursor per project)."""


@main.group("push")
def push_group() -> None:
    """Push reviewer records back to the tracing tool their traces came from."""


def _routing_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--rules", type=click.Path(dir_okay=False, path_type=Path),
                      default=None, help="Queue rules (YAML) instead of one --queue.")(fn)
    return queue_option(fn)


def _import(items, queue: str | None, rules: Path | None, store: Store):  # type: ignore[no-untyped-def]
    from ls_llmtrace.ingest.routing import import_traces
    from ls_llmtrace.ingest.rules import load_rules

    config = load_rules(rules) if rules else None
    return import_traces(client(), store, items, queue=queue, rules=config).summary


@pull_group.command("phoenix")
@click.option("--project", required=True, help="Phoenix project (name or id).")
@click.option("--since", type=click.DateTime(TIME_FORMATS), default=None,
              help="Spans started since (default: the last pull's cursor, minus 5 minutes).")
@click.option("--filter", "filters", multiple=True,
              help="Phoenix span attribute filter `key:value`, repeatable (e.g. "
              "`--filter session.id:abc`).")
@click.option("--url", default=None, help="Phoenix URL (default: LS_LLMTRACE_PHOENIX_URL).")
@_routing_options
@friendly
def pull_phoenix(project: str, since: datetime | None, filters: tuple[str, ...],
                 url: str | None, queue: str | None, rules: Path | None) -> None:
    """Import the traces of a Phoenix project with spans started since the cursor; pulling
    again changes nothing (each trace is claimed once)."""
    from ls_llmtrace.connectors.phoenix import PhoenixClient, PhoenixPull

    phoenix = PhoenixClient(url)
    with Store() as store:
        pull = PhoenixPull(phoenix, store, project, since=since, attributes=filters)
        summary = _import(pull.traces(), queue, rules, store)
        cursor = pull.save_cursor(store)
    click.echo(f"phoenix {project}: {len(pull.trace_ids)} traces read; {summary.line()}")
    click.echo(summary.queues_line())
    if cursor:
        click.echo(f"cursor: {cursor}")


@push_group.command("phoenix")
@click.option("--project", required=True, help="Phoenix project the traces came from.")
@click.option("--url", default=None, help="Phoenix URL (default: LS_LLMTRACE_PHOENIX_URL).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def push_phoenix(project: str, url: str | None, as_json: bool) -> None:
    """Write reviewer records of pulled traces to Phoenix as HUMAN span annotations
    (updated in place on a re-push; unchanged records are not sent again)."""
    from ls_llmtrace.connectors.phoenix import PhoenixClient, push

    with Store() as store:
        summary = push(PhoenixClient(url), store, project)
    click.echo(json.dumps(summary.__dict__) if as_json else summary.line("phoenix"))


@pull_group.command("mlflow")
@click.option("--experiment", required=True, help="MLflow experiment (name or id).")
@click.option("--since", type=click.DateTime(TIME_FORMATS), default=None,
              help="Traces requested since (default: the last pull's cursor, minus 5 minutes).")
@click.option("--filter", "filter_string", default="",
              help="MLflow trace search filter, ANDed with the time (e.g. "
              "\"tags.env = 'prod'\").")
@click.option("--url", default=None, help="MLflow URL (default: LS_LLMTRACE_MLFLOW_URL).")
@_routing_options
@friendly
def pull_mlflow(experiment: str, since: datetime | None, filter_string: str,
                url: str | None, queue: str | None, rules: Path | None) -> None:
    """Import the finished traces of an MLflow experiment requested since the cursor;
    pulling again changes nothing (each trace is claimed once)."""
    from ls_llmtrace.connectors.mlflow import MlflowClient, MlflowPull

    mlflow = MlflowClient(url)
    with Store() as store:
        pull = MlflowPull(mlflow, store, experiment, since=since, filter_string=filter_string)
        summary = _import(pull.traces(), queue, rules, store)
        cursor = pull.save_cursor(store)
    running = f" ({pull.in_progress} still running, left for later)" if pull.in_progress else ""
    click.echo(f"mlflow {experiment}: {len(pull.trace_ids)} traces read{running}; "
               f"{summary.line()}")
    click.echo(summary.queues_line())
    if cursor:
        click.echo(f"cursor: {cursor}")


@push_group.command("mlflow")
@click.option("--experiment", required=True, help="MLflow experiment the traces came from.")
@click.option("--url", default=None, help="MLflow URL (default: LS_LLMTRACE_MLFLOW_URL).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def push_mlflow(experiment: str, url: str | None, as_json: bool) -> None:
    """Write reviewer records of pulled traces to MLflow as HUMAN assessments (a feedback
    per record, an expectation for a corrected output), updated in place on a re-push;
    unchanged ones are not sent again. Counts are of assessments."""
    from ls_llmtrace.connectors.mlflow import MlflowClient, push

    with Store() as store:
        summary = push(MlflowClient(url), store, experiment)
    click.echo(json.dumps(summary.__dict__) if as_json else summary.line("mlflow"))
    for error in summary.errors[:5]:
        click.echo(f"  {error}", err=True)


@push_group.command("otel")
@click.option("--endpoint", required=True,
              help="OTLP/HTTP endpoint: a base URL (/v1/logs is appended) or the logs URL.")
@click.option("--source", "sources", multiple=True,
              type=click.Choice(["reviewer", "end_user", "support", "qa", "evaluator"]),
              help="Record sources to export, repeatable (default: reviewer, end_user, "
              "support, qa).")
@click.option("--all", "resend", is_flag=True,
              help="Send every record again, unchanged ones too (same log.record.uid).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def push_otel(endpoint: str, sources: tuple[str, ...], resend: bool, as_json: bool) -> None:
    """Export reviewer and feedback records as OpenTelemetry `gen_ai.evaluation.result`
    events (OTLP/HTTP protobuf logs, linked to the trace and span judged); unchanged
    records are not sent again to the same endpoint."""
    from ls_llmtrace import settings
    from ls_llmtrace.connectors.otel import SOURCES, OtlpLogSender, push
    from ls_llmtrace.models import Source

    chosen = tuple(Source(s) for s in sources) or SOURCES
    sender = OtlpLogSender(endpoint, settings.otlp_headers())
    with Store() as store:
        summary = push(sender, store, resend=resend, sources=chosen)
    click.echo(json.dumps(summary.__dict__) if as_json else summary.line("otel"))
