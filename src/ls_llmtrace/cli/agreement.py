"""``agreement``: the judge against the reviewers, and the reviewers against each other;
``report``: every figure as one static HTML page (``ls_llmtrace.evals``)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import TIME_FORMATS, Store, client, friendly, main
from ls_llmtrace.errors import ConfigError
from ls_llmtrace.timeutil import to_utc


def fetch_verdicts(store: Store, queue_name: str) -> list[str]:
    """Read the judge's predictions of every project of a queue into the store."""
    from ls_llmtrace.ingest.queues import required, schema_of
    from ls_llmtrace.records.verdicts import sync_verdicts
    from ls_llmtrace.schema.model import find_schema_version

    queue = required(store, queue_name)
    ls = client()
    lines = []
    projects = {int(p["project_id"]): p for p in store.projects() if p["queue"] == queue_name}
    for project_id, project in sorted(projects.items()):
        schema = (schema_of(queue) if project_id == queue.project_id else
                  find_schema_version(settings.schema_dir(), project["schema_id"],
                                      int(project["schema_version"])))
        if schema is None:
            raise ConfigError(f"project {project_id} of queue {queue_name!r} needs schema "
                              f"{project['schema_id']}@v{project['schema_version']}, which "
                              f"{settings.schema_dir()} does not hold")
        lines.append(sync_verdicts(ls, store, project_id, schema).line())
    return lines


def _common(fn: Any) -> Any:
    for option in reversed([
        click.option("--queue", default=None,
                     help="Queue name (default: LS_LLMTRACE_QUEUE or 'review')."),
        click.option("--judge-version", default=None, metavar="MODEL_VERSION",
                     help="The judge's model_version (default: the one that judged the "
                     "most traces of the queue)."),
        click.option("--since", default=None, type=click.DateTime(TIME_FORMATS),
                     help="Traces from this time on (the trace's start time, else when it "
                     "was judged or reviewed; UTC unless an offset is given)."),
        click.option("--until", default=None, type=click.DateTime(TIME_FORMATS),
                     help="Traces before this time."),
        click.option("--fetch", is_flag=True,
                     help="First read the judge's predictions from Label Studio into the "
                     "store (needed once, and after new predictions)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Bootstrap seed (same seed and data: same intervals)."),
        click.option("--resamples", type=click.IntRange(0), default=2000, show_default=True,
                     help="Bootstrap resamples (0: no intervals)."),
    ]):
        fn = option(fn)
    return fn


def _verdicts(queue: str | None, judge_version: str | None, since: datetime | None,
              until: datetime | None, fetch: bool) -> tuple[Any, list[str]]:
    from ls_llmtrace.evals.judged import queue_verdicts

    name = queue or settings.default_queue()
    with Store() as store:
        fetched = fetch_verdicts(store, name) if fetch else []
        qv = queue_verdicts(store, name, judge_version=judge_version, since=to_utc(since),
                            until=to_utc(until))
    return qv, fetched


@main.command("agreement")
@_common
@click.option("--pairwise", "pairwise_file", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Instead: a pairwise judge's verdicts in both presentation orders "
              "(JSONL: pair_id, human, first, second) against the human preference.")
@click.option("--missing-as", default=None, metavar="VERDICT",
              help="With --pairwise: count a missing verdict as this one in the kappa "
              "between orders (default: a category of its own).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@friendly
def agreement_cmd(queue: str | None, judge_version: str | None, since: datetime | None,
                  until: datetime | None, fetch: bool, seed: int, resamples: int,
                  pairwise_file: Path | None, missing_as: str | None, as_json: bool) -> None:
    """How far the judge agrees with the reviewers (accuracy, kappa, TPR, TNR, per
    category, spans, by model version / product area / user segment, each with a bootstrap
    interval) and the reviewers with each other (Krippendorff's alpha)."""
    from ls_llmtrace.evals import agreementsummary as lib

    if pairwise_file is not None:
        rows, problems = lib.read_pairwise(pairwise_file)
        for line in problems:
            click.echo(f"left out: {line}", err=True)
        if not rows:
            raise ConfigError(f"{pairwise_file}: no usable pairs")
        found = lib.pairwise_summary(rows, seed=seed, n_resamples=resamples, level=0.95,
                                     missing=missing_as)
        if as_json:
            click.echo(json.dumps({"file": str(pairwise_file), "left_out": len(problems),
                                   **found.as_dict()}, sort_keys=True))
        else:
            click.echo(lib.format_pairwise(found, str(pairwise_file)))
        return
    qv, fetched = _verdicts(queue, judge_version, since, until, fetch)
    summary = lib.summarize(qv, seed=seed, n_resamples=resamples)
    if as_json:
        click.echo(json.dumps({**summary, "fetched": fetched}, sort_keys=True))
        return
    for line in fetched:
        click.echo(line)
    click.echo(lib.format_summary(summary))


@main.command("report")
@_common
@click.option("--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for report.html (created).")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="week",
              show_default=True, help="Time step of the failure-rate charts.")
@click.option("--golden", "golden_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A golden set folder (or a folder of them: the newest) whose manifest "
              "gives the coverage per category (default: ./golden when present).")
@friendly
def report_cmd(queue: str | None, judge_version: str | None, since: datetime | None,
               until: datetime | None, fetch: bool, seed: int, resamples: int,
               out_dir: Path, period: str, golden_dir: Path | None) -> None:
    """One static HTML page (charts inlined, no network): failure rates over time (raw and
    corrected), judge-vs-human agreement, reviewer agreement, calibration, golden-set
    coverage."""
    from ls_llmtrace.evals.report import build_report, golden_manifest

    qv, fetched = _verdicts(queue, judge_version, since, until, fetch)
    for line in fetched:
        click.echo(line)
    with Store() as store:
        calibrations = [c.__dict__ for c in getattr(store, "calibrations", lambda: [])()]
    manifest = golden_manifest(golden_dir if golden_dir is not None else Path("golden"))
    path = build_report(qv, out_dir, period=period, seed=seed, n_resamples=resamples,
                        calibrations=calibrations, manifest=manifest)
    click.echo(f"report written to {path} (open it in a browser; it needs no network)")
