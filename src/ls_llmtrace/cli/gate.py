"""`eval run`: the regression gate over a golden set (exit 1 on a regression)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import friendly
from ls_llmtrace.cli.evals import eval_group
from ls_llmtrace.errors import ConfigError


@contextmanager
def _bar(label: str, total: int) -> Iterator[Any]:
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        yield bar


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


@eval_group.command("run")
@click.argument("golden_set", metavar="SET", type=click.Path(exists=True, path_type=Path))
@click.option("--candidates", "candidates_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Candidate outputs: JSONL of {"case_id", "output"}.')
@click.option("--endpoint", default=None,
              help="Generate candidates: OpenAI-compatible API base (e.g. http://host/v1).")
@click.option("--model", default=None, help="Model to generate with (with --endpoint).")
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Requests at once (generation and the LLM judge).")
@click.option("--judge", type=click.Choice(["none", "rules", "llm"]), default=None,
              help="Judge check with the rubric (default: the config's, else none).")
@click.option("--config", "config_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gate config (YAML): checks, thresholds, per-category checks.")
@click.option("--baseline", default=None,
              help="Compare with: a results file (--json output), a run id or name, or "
              "'last' (the newest stored run on this set).")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=None,
              help="Allowed overall pass-rate drop (fraction; default 0).")
@click.option("--junit", "junit_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option("--markdown", "markdown_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary (for a PR comment) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole run as JSON.")
@click.option("--save/--no-save", default=True, show_default=True,
              help="Store the run (a later --baseline can name it).")
@click.option("--name", default=None,
              help="The run's name (default: the model, or the candidates file's stem).")
@click.pass_context
@friendly
def eval_run(ctx: click.Context, golden_set: Path, candidates_file: Path | None,
             endpoint: str | None, model: str | None, temperature: float, concurrency: int,
             judge: str | None, config_path: Path | None, baseline: str | None,
             tolerance: float | None, junit_path: Path | None, markdown_path: Path | None,
             as_json: bool, save: bool, name: str | None) -> None:
    """Score candidate outputs on a golden set and compare with a baseline run.

    Exit code 1 on a regression (a newly failing case, or a pass-rate drop beyond the
    tolerance), 2 on a bad config or input, 0 otherwise."""
    from ls_llmtrace.evals.candidates import GenerationConfig
    from ls_llmtrace.evals.gate import load_gate_config, run_gate
    from ls_llmtrace.evals.junit import write_junit
    from ls_llmtrace.evals.summary import markdown_summary

    config = load_gate_config(config_path)
    updates: dict[str, Any] = {}
    if judge is not None:
        updates["judge"] = judge
    if tolerance is not None:
        updates["tolerance"] = tolerance
    config = config.model_copy(update=updates)
    generation = None
    if endpoint is not None:
        if candidates_file is not None:
            raise ConfigError("give either --candidates or --endpoint, not both")
        if not model:
            raise ConfigError("--endpoint needs --model")
        generation = GenerationConfig(endpoint, model, temperature, concurrency,
                                      settings.candidate_api_key(), settings.llm_timeout(),
                                      settings.llm_max_retries(), settings.llm_retry_base())
    run = run_gate(golden_set, config, candidates_file=candidates_file, generation=generation,
                   baseline=baseline, name=name, save=save, progress=_bar)
    if junit_path is not None:
        write_junit(run, junit_path)
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown_summary(run), encoding="utf-8")
    if as_json:
        click.echo(run.model_dump_json(indent=2))
        ctx.exit(run.exit_code)
    t = run.totals
    click.echo(f"{run.set_id}: {t['pass']} of {t['cases'] - t['skipped']} cases pass "
               f"({_pct(run.pass_rate)}); {t['fail']} fail, {t['error']} without a candidate, "
               f"{t['skipped']} skipped")
    for group, stats in run.groups.items():
        click.echo(f"  {group}: {stats.passed}/{stats.total} ({_pct(stats.pass_rate)})")
    c = run.comparison
    if c is not None:
        click.echo(f"baseline {c.baseline_run_id} ({c.baseline_name}): "
                   f"{len(c.newly_failing)} newly failing, {len(c.fixed)} fixed; pass rate "
                   f"{_pct(c.baseline_pass_rate)} -> {_pct(c.pass_rate)}")
        if c.delta_common is not None:
            click.echo(f"  on {c.common} shared cases: {c.delta_common * 100:+.1f} pts "
                       f"(95% CI {(c.ci_low or 0) * 100:+.1f} to {(c.ci_high or 0) * 100:+.1f})")
        by_id = {r.case_id: r for r in run.results}
        for case_id in c.newly_failing:
            click.echo(f"  newly failing {case_id}: {by_id[case_id].failure_message()}")
    elif baseline is not None:
        click.echo("no stored run to compare with yet")
    if save:
        click.echo(f"saved as run {run.run_id}")
    click.echo(f"REGRESSION: {'; '.join(run.reasons)}" if run.regression else "gate passed")
    ctx.exit(run.exit_code)
