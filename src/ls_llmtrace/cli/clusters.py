"""``clusters``: the failed traces of a queue grouped by what the reviewers wrote
(the library: ``ls_llmtrace.evals.clusters``)."""

from __future__ import annotations

import json
from typing import cast

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import friendly, main
from ls_llmtrace.store import Store


@main.command("clusters")
@click.option("--queue", default=None,
              help="Queue name (default: LS_LLMTRACE_QUEUE or 'review').")
@click.option("--min", "min_failures", type=click.IntRange(2), default=10, show_default=True,
              help="Fewest failures to cluster; below it: one line and exit 4.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="KMeans seed (same seed and data: same clusters).")
@click.option("--method", type=click.Choice(["auto", "wordllama", "tfidf"]), default="auto",
              show_default=True, help="Embeddings (auto: wordllama, else TF-IDF).")
@click.option("--json", "as_json", is_flag=True, help="Print the clusters as JSON.")
@friendly
def clusters(queue: str | None, min_failures: int, seed: int, method: str,
             as_json: bool) -> None:
    """Group a queue's failed traces by what the reviewers wrote and marked: each cluster's
    name (top terms), size, share, examples, and where it concentrates."""
    from ls_llmtrace.evals.clusters import Method, cluster_failures, queue_failures

    name = queue or settings.default_queue()
    with Store() as store:
        failures, reviewed, _ = queue_failures(store, name)
    report = cluster_failures(failures, seed=seed, method=cast(Method, method),
                              min_failures=min_failures)
    if as_json:
        click.echo(json.dumps({"queue": name, "reviewed": reviewed, **report.as_json()},
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


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
