"""``clusters``: the failed traces of a queue grouped by what the reviewers wrote; ``schema
suggest``: those clusters as a draft next schema version (``ls_llmtrace.evals.clusters``,
``ls_llmtrace.evals.suggest``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import Store, client, friendly, main
from ls_llmtrace.cli.schema import schema_group


@main.command("clusters")
@click.option("--queue", default=None,
              help="Queue name (default: LS_LLMTRACE_QUEUE or 'review').")
@click.option("--min", "min_failures", type=click.IntRange(2), default=10, show_default=True,
              help="Fewest failures to cluster; below it: one line and exit 4.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="KMeans seed (same seed and data: same clusters).")
@click.option("--method", type=click.Choice(["auto", "wordllama", "tfidf"]), default="auto",
              show_default=True, help="Embeddings (auto: wordllama, else TF-IDF).")
@click.option("--label-tasks", is_flag=True,
              help="Also write each failed task's cluster id and name into its Label Studio "
              "task (data.llmtrace_cluster, data.llmtrace_cluster_name: a Data Manager filter).")
@click.option("--json", "as_json", is_flag=True, help="Print the clusters as JSON.")
@friendly
def clusters(queue: str | None, min_failures: int, seed: int, method: str,
             label_tasks: bool, as_json: bool) -> None:
    """Group a queue's failed traces by what the reviewers wrote and marked: each cluster's
    name (top terms), size, share, examples, and where it concentrates."""
    from ls_llmtrace.evals import clusters as lib

    name = queue or settings.default_queue()
    with Store() as store:
        failures, reviewed, _ = lib.queue_failures(store, name)
    report = lib.cluster_failures(failures, seed=seed, method=cast(lib.Method, method),
                                  min_failures=min_failures)
    labelled = lib.label_tasks(client(), report, failures) if label_tasks else None
    if as_json:
        click.echo(json.dumps({"queue": name, "reviewed": reviewed, **report.as_json(),
                               **({"tasks_labelled": labelled} if label_tasks else {})},
                              sort_keys=True, ensure_ascii=False))
        return
    click.echo(f"queue {name}: {report.failures} failures of {reviewed} reviewed traces, "
               f"{report.k} clusters ({report.method}, seed {seed}"
               + (f", silhouette {report.silhouette:.3f}" if report.silhouette is not None
                  else "") + ")")
    if report.fallback_reason:
        click.echo(f"note: {report.fallback_reason}; TF-IDF used")
    for c in report.clusters:
        click.echo(f"{c.id} {c.name}: {c.size} ({c.share:.0%})")
        for key in ("model_version", "product_area"):
            rows = c.concentrations.get(key) or []
            if rows:
                click.echo(f"  {key}: " + ", ".join(
                    f"{r['value']} {r['share']:.0%} (x{r['lift']:.1f})" for r in rows))
        for example in c.examples:
            click.echo(f"  {example['trace_id']}: \"{_short(example['explanation'])}\"")
    if labelled is not None:
        click.echo(f"{labelled} Label Studio tasks carry their cluster "
                   "(filter the Data Manager on llmtrace_cluster)")


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


@schema_group.command("suggest")
@click.option("--queue", default=None,
              help="Queue name (default: LS_LLMTRACE_QUEUE or 'review').")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draft file (default: <id>.v<next>.yaml in LS_LLMTRACE_SCHEMA_DIR).")
@click.option("--min-reviewed", type=click.IntRange(2), default=30, show_default=True,
              help="Fewest reviewed traces; below it: one line and exit 4.")
@click.option("--seed", type=int, default=0, show_default=True, help="Clustering seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the suggestion as JSON.")
@friendly
def schema_suggest(queue: str | None, output: Path | None, min_reviewed: int, seed: int,
                   as_json: bool) -> None:
    """Draft the next schema version from the queue's failure clusters: new failure
    categories with rubric definitions and quoted examples, and its `schema diff`."""
    from ls_llmtrace.evals.clusters import cluster_failures, queue_failures
    from ls_llmtrace.evals.suggest import TooFewReviewed, draft_yaml, suggest_schema, write_draft

    name = queue or settings.default_queue()
    with Store() as store:
        failures, reviewed, schema = queue_failures(store, name)
    if reviewed < min_reviewed:
        raise TooFewReviewed(f"only {reviewed} reviewed traces: schema suggest needs "
                             f"{min_reviewed} (review more traces or lower --min-reviewed)")
    report = cluster_failures(failures, seed=seed)
    suggestion = suggest_schema(schema, report, reviewed, min_reviewed)
    path = output or settings.schema_dir() / f"{schema.id}.v{schema.version + 1}.yaml"
    origin = f"{report.failures} failures of {reviewed} reviewed traces, seed {seed}"
    write_draft(suggestion, draft_yaml(suggestion, name, origin), path)
    if as_json:
        click.echo(json.dumps({"queue": name, "file": str(path), **suggestion.as_json()},
                              sort_keys=True, ensure_ascii=False))
        return
    click.echo(f"queue {name} at {schema.version_id}: {origin}, {report.k} clusters")
    for row in suggestion.matched:
        click.echo(f"{row['cluster']} {row['name']} ({row['size']}): existing category "
                   f"{row['category']!r} ({row['why']})")
    for row in suggestion.skipped:
        click.echo(f"{row['cluster']} {row['name']} ({row['size']}): left out, {row['why']}")
    for row in suggestion.proposed:
        click.echo(f"{row['cluster']} -> new category {row['category']!r} ({row['size']})")
        for example in row["positive_examples"]:
            click.echo(f"  \"{_short(example)}\"")
    click.echo(f"draft {suggestion.schema.version_id} written to {path}")
    click.echo(f"schema diff {schema.version_id} -> {suggestion.schema.version_id}:")
    for change in suggestion.changes:
        click.echo(f"  {change.line()}")
    if not suggestion.changes:
        click.echo("  no change: every cluster is an existing category")
    else:
        click.echo(f"review it, then: ls-llmtrace schema push {path} --queue {name}")
