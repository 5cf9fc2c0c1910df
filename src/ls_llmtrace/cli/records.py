"""Records out: sync annotations, list records, feedback channels, statistics."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    TIME_FORMATS,
    Store,
    client,
    friendly,
    keep_rejects,
    load_schema_dir,
    main,
)

# The values of ls_llmtrace.models.Source, spelled out so that loading this module does not
# load the models (start-up); tests/unit/test_cli_startup.py checks the two agree.
SOURCES = ("reviewer", "end_user", "support", "qa", "evaluator", "judge")


@main.command("sync")
@click.option("--schemas", "schema_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory holding the schema files of the synced projects (default: "
              "LS_LLMTRACE_SCHEMA_DIR, or label_configs/ found from here upwards).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def sync_cmd(schema_dir: Path | None, as_json: bool) -> None:
    """Read new and changed annotations into the store (incremental, idempotent)."""
    from ls_llmtrace.records.sync import sync_all

    with Store() as store:
        summaries = sync_all(client(), store, schema_dir=schema_dir)
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in summaries]))
        return
    if not summaries:
        click.echo("no projects to sync: import traces first (`ls-llmtrace import FILE`)")
    for summary in summaries:
        click.echo(summary.line())


@main.command("records")
@click.option("--source", default=None, type=click.Choice(SOURCES),
              help="Where the feedback came from.")
@click.option("--label", default=None)
@click.option("--schema-id", default=None)
@click.option("--schema-version", default=None, type=int)
@click.option("--model-version", default=None, help="The trace's model version.")
@click.option("--product-area", default=None)
@click.option("--user-segment", default=None)
@click.option("--since", default=None, type=click.DateTime(TIME_FORMATS),
              help="Given at or after (UTC unless an offset is given).")
@click.option("--until", default=None, type=click.DateTime(TIME_FORMATS), help="Given before.")
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
    from ls_llmtrace.store import RecordFilter
    from ls_llmtrace.timeutil import to_utc

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


# feedback channels and statistics --------------------------------------------------------

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
@click.option("--schemas", "schema_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Schema files (default: LS_LLMTRACE_SCHEMA_DIR, or label_configs/ found "
              "from here upwards).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to keep rejected lines (default: <home>/rejects/<file>.rejects.jsonl).")
@click.option("--strict", is_flag=True, help="Exit 4 if any line is rejected.")
@friendly
def feedback_import(feedback_file: Path, channel: str | None, fmt: str | None,
                    mapping_path: Path | None, schema_dir: Path | None, rejects: Path | None,
                    strict: bool) -> None:
    """Import feedback signals from a JSONL or CSV file; re-importing changes nothing."""
    from ls_llmtrace.models import write_rejects
    from ls_llmtrace.records.feedback import ingest, load_mapping, read_feedback_file
    from ls_llmtrace.records.feedbackapi import _schema_for

    mapping = load_mapping(mapping_path)
    schema_dir = schema_dir or settings.schema_dir()
    schemas = load_schema_dir(schema_dir) if schema_dir.is_dir() else {}
    schema = _schema_for(mapping, schemas)
    with Store() as store:
        result = ingest(store, read_feedback_file(feedback_file, channel, fmt), mapping, schema)
    keep_rejects([f"{r.where}: {r.reason}" for r in result.rejected],
                  lambda path: write_rejects(result.rejected, path), feedback_file, rejects)
    click.echo(f"{feedback_file}: {result.line()}")
    if strict and result.rejected:
        sys.exit(4)


@feedback_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9091, show_default=True, type=int)
@click.option("--schemas", "schema_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Schema files (default: LS_LLMTRACE_SCHEMA_DIR, or label_configs/ found "
              "from here upwards).")
@friendly
def feedback_serve(host: str, port: int, schema_dir: Path | None) -> None:
    """Serve the Feedback API (POST /feedback, POST /ls-webhook) until interrupted."""
    import contextlib

    from werkzeug.serving import make_server

    from ls_llmtrace.records.feedbackapi import create_app

    if not settings.feedback_token():
        click.echo("warning: LS_LLMTRACE_FEEDBACK_TOKEN is not set: /feedback refuses "
                   "every request", err=True)
    app = create_app(schemas_dir=schema_dir or settings.schema_dir())
    server = make_server(host, port, app, threaded=True)
    click.echo(f"Feedback API at http://{host}:{port}/feedback (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@feedback_group.command("mapping")
@friendly
def feedback_mapping() -> None:
    """Print the feedback mapping file in use (copy it to edit)."""
    from ls_llmtrace.records.feedback import load_mapping

    path = settings.feedback_mapping_path()
    load_mapping(path)  # checked before it is shown
    click.echo(f"# {path}")
    click.echo(path.read_text(encoding="utf-8"), nl=False)


@main.command("stats")
@click.option("--schemas", "schema_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Schema files: their failing labels decide what a failure is (default: "
              "LS_LLMTRACE_SCHEMA_DIR, or label_configs/ found from here upwards).")
@click.option("--since", default=None, type=click.DateTime(TIME_FORMATS))
@click.option("--until", default=None, type=click.DateTime(TIME_FORMATS))
@click.option("--clusters", "cluster_queue", default=None, metavar="QUEUE",
              help="Also flag the failure clusters of QUEUE growing in recent traces.")
@click.option("--recent", "recent_days", type=click.FloatRange(min=0, min_open=True),
              default=7.0, show_default=True, help="Days counted as recent (--clusters).")
@click.option("--corrected", "corrected_queue", default=None, metavar="QUEUE",
              help="Also the failure rates of QUEUE corrected for its judge's errors "
              "(Rogan-Gladen with the judge's measured TPR/TNR, bootstrap intervals).")
@click.option("--judge-version", default=None, metavar="MODEL_VERSION",
              help="With --corrected: the judge (default: the one that judged the most).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="With --corrected: the bootstrap seed.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def stats_cmd(schema_dir: Path | None, since: Any, until: Any, cluster_queue: str | None,
              recent_days: float, corrected_queue: str | None, judge_version: str | None,
              seed: int, as_json: bool) -> None:
    """Failure rates and counts by model version, product area and user segment, every
    feedback source side by side; with --corrected, a queue's rates corrected for its
    judge's errors next to the raw ones."""
    from ls_llmtrace.records.stats import compute_stats, failing_labels, format_stats
    from ls_llmtrace.store import RecordFilter
    from ls_llmtrace.timeutil import to_utc

    schema_dir = schema_dir or settings.schema_dir()
    schemas = load_schema_dir(schema_dir) if schema_dir.is_dir() else {}
    with Store() as store:
        facts = store.record_facts(RecordFilter(since=to_utc(since), until=to_utc(until)))
    stats = compute_stats(facts, failing_labels(schemas))
    growing = _growing(cluster_queue, recent_days) if cluster_queue else None
    corrected = (_corrected(corrected_queue, judge_version, since, until, seed)
                 if corrected_queue else None)
    if as_json:
        click.echo(json.dumps({**stats, **({"growing_clusters": growing}
                                           if growing is not None else {}),
                               **({"corrected": corrected} if corrected else {})}, indent=2))
        return
    click.echo(format_stats(stats))
    if corrected is not None:
        from ls_llmtrace.evals.correction import format_corrected

        click.echo("")
        click.echo(format_corrected(corrected))
    if isinstance(growing, list):
        click.echo(f"failure clusters of {cluster_queue} growing in the last {recent_days:g} "
                   f"days: {len(growing) or 'none'}")
        for row in growing:
            click.echo(f"  {row['cluster']} {row['name']}: {row['recent']} of "
                       f"{row['recent_failures']} recent failures ({row['recent_share']:.0%}) "
                       f"vs {row['earlier']} of {row['earlier_failures']} before "
                       f"({row['earlier_share']:.0%})" + (" NEW" if row["new"] else ""))
    elif growing is not None:
        click.echo(f"failure clusters of {cluster_queue}: {growing['too_few']}")


def _corrected(queue: str, judge_version: str | None, since: Any, until: Any,
               seed: int) -> dict[str, Any]:
    """The queue's failure rates corrected for its judge (evals/correction.py)."""
    from ls_llmtrace.evals.correction import corrected_rates
    from ls_llmtrace.evals.judged import queue_verdicts
    from ls_llmtrace.timeutil import to_utc

    with Store() as store:
        qv = queue_verdicts(store, queue, judge_version=judge_version, since=to_utc(since),
                            until=to_utc(until))
    return corrected_rates(qv, seed=seed)


def _growing(queue: str, recent_days: float) -> list[dict[str, Any]] | dict[str, Any]:
    """The growing clusters of a queue, or {"too_few": why} with too few failures."""
    from ls_llmtrace.evals import clusters as lib

    with Store() as store:
        failures, _, _ = lib.queue_failures(store, queue)
    try:
        report = lib.cluster_failures(failures)
    except lib.TooFewFailures as exc:
        return {"too_few": str(exc)}
    return lib.growing_clusters(report, failures, recent_days)


@main.command("adjudicate")
@click.option("--queue", required=True, help="The review queue whose disagreements to settle.")
@click.option("--to", "to", default=None,
              help="The adjudication queue (default: <queue>-adjudication).")
@click.option("--with-judge", is_flag=True,
              help="Also route traces where a reviewer changed the judge's verdict.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def adjudicate_cmd(queue: str, to: str | None, with_judge: bool, as_json: bool) -> None:
    """Route the traces whose reviewers disagree (run `sync` first) to an adjudication
    queue for the schema's owner; the owner's decision, once synced, decides the trace.
    Re-running adds only new disagreements."""
    from ls_llmtrace.records.adjudication import route_disagreements

    with Store() as store:
        summary = route_disagreements(client(), store, queue, to, with_judge)
    if as_json:
        click.echo(json.dumps(summary.__dict__))
    else:
        click.echo(summary.line())
