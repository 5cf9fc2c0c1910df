"""``calibrate``: tune the judge on a queue's human labels and save it as a new judge
version (the choosing and measuring: ``ls_llmtrace.evals.calibrate``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import cast

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import Store, friendly, main, queue_option
from ls_llmtrace.errors import ConfigError


def _fractions(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"--split {value!r}: three numbers, e.g. 0.6,0.2,0.2") from None
    if len(parts) != 3:
        raise ConfigError(f"--split {value!r}: three numbers, e.g. 0.6,0.2,0.2")
    return cast(tuple[float, float, float], parts)


@main.command("calibrate")
@queue_option
@click.option("--judge", "kind", type=click.Choice(["learned", "llm"]), default=None,
              help="Which judge (default: LS_LLMTRACE_JUDGE; auto: llm when an endpoint is "
              "configured, else learned).")
@click.option("--min-labels", type=click.IntRange(6), default=None,
              help="Refuse below this many human-labelled traces (default: "
              "LS_LLMTRACE_CALIBRATE_MIN_LABELS, 100).")
@click.option("--split", "split", default="0.6,0.2,0.2", show_default=True,
              help="Train, dev, test shares (stratified by verdict).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split, the LLM few-shot draws and the bootstrap.")
@click.option("--bootstrap", "resamples", type=click.IntRange(0), default=2000,
              show_default=True, help="Bootstrap resamples for the 95% intervals.")
@click.option("--target-width", type=click.FloatRange(min=0.0, min_open=True), default=0.1,
              show_default=True, help="Say how many labels would make the test kappa "
              "interval this wide.")
@click.option("--llm-draws", type=click.IntRange(0), default=2, show_default=True,
              help="LLM judge: seeded few-shot draws from train to try (each with and "
              "without rubric examples); each costs one call per dev trace.")
@click.option("--dry-run", is_flag=True, help="Measure and report, save nothing.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the result JSON here (default: "
              "<home>/calibrations/<schema>.<judge>.<id>.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly
def calibrate_command(queue: str | None, kind: str | None, min_labels: int | None,
                      split: str, seed: int, resamples: int, target_width: float,
                      llm_draws: int, dry_run: bool, out_file: Path | None,
                      as_json: bool) -> None:
    """Choose the judge's threshold, examples or features on a queue's human labels
    (stratified train/dev/test split, kappa on dev), report test agreement before and
    after with intervals, and save the choice as the judge version the backend uses."""
    from ls_llmtrace.evals.calibrate import JudgeKind, calibrate, default_result_path
    from ls_llmtrace.ingest import queues

    chosen = kind or settings.judge_kind()
    if chosen not in ("learned", "llm"):
        raise ConfigError(f"cannot calibrate the {chosen!r} judge: pass --judge learned or "
                          "--judge llm")
    name = queue or settings.default_queue()
    with Store() as store:
        found = queues.required(store, name)
        schema = queues.schema_of(found)
        calls = [0]

        def tick(n: int) -> None:  # LLM calls so far, on a terminal only
            calls[0] += n
            if calls[0] % 10 == 0:
                click.echo(f"\r{calls[0]} judge calls", nl=False, err=True)

        show = not as_json and sys.stderr.isatty() and chosen == "llm"
        result = calibrate(
            store, schema, cast(JudgeKind, chosen), queue=found.name,
            project_id=found.project_id, min_labels=min_labels, fractions=_fractions(split),
            seed=seed, resamples=resamples, target_width=target_width, llm_draws=llm_draws,
            save=not dry_run,
            concurrency=settings.judge_concurrency() if chosen == "llm" else 1,
            progress=tick if show else None)
        if show:
            click.echo("", err=True)
    path = out_file or default_result_path(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = result.as_json()
    body["result_file"] = str(path)
    path.write_text(json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    if as_json:
        click.echo(json.dumps(body, sort_keys=True, ensure_ascii=False))
        return
    for line in summary_lines(body):
        click.echo(line)


def summary_lines(body: dict[str, object]) -> list[str]:
    """The result as a few lines of text."""
    b = cast(dict, body)
    labels, split = b["labels"], b["split"]
    lines = [f"{b['judge']} judge on {b['queue']} ({b['schema']}): {labels['total']} human "
             f"labels ({labels['failing']} failing); split train {split['train']['n']} / "
             f"dev {split['dev']['n']} / test {split['test']['n']} (stratified, seed "
             f"{b['seed']}); {b['tried']} settings tried"]
    for side in ("before", "after"):
        s = b[side]
        t = s["test"]
        lines.append(
            f"{side}: {s['describe']}"
            + ("" if s["threshold"] is None else f", threshold {s['threshold']:g}")
            + f"; dev kappa {s['dev_kappa']:.3f}; test kappa {_est(t['kappa'])}, accuracy "
            f"{_est(t['accuracy'])}, TPR {_est(t['tpr'])}, TNR {_est(t['tnr'])} "
            f"(n {t['n']}, 95% bootstrap)")
    more = b["more_labels"]
    if more.get("more_labels") is not None:
        lines.append(
            f"interval width {more['current_width']:.3f}; for {more['target_width']:g}: about "
            f"{more['more_labels']} more labels ({more['labels_needed']} in all, "
            f"{more['test_items_needed']} in the test split; 1/sqrt(n) scaling)")
    if b.get("calibration_id") is not None:
        what = ("a new judge version" if b["changed"] else
                "no better setting on dev: the judge keeps its setting")
        lines.append(f"saved as calibration {b['calibration_id']} ({what}); the backend "
                     "uses it from its next /setup")
    else:
        lines.append("not saved (--dry-run)")
    lines.append(f"result: {b['result_file']}")
    return lines


def _est(e: dict[str, object]) -> str:
    value, low, high = e.get("value"), e.get("low"), e.get("high")
    if not isinstance(value, float | int):
        return "-"
    if isinstance(low, float | int) and isinstance(high, float | int):
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"
    return f"{value:.3f}"
