"""``eval judge``: the judge's agreement with the reviewers on a golden set, gated against
the judge's last accepted version (the rule: ``ls_llmtrace.evals.judgegate``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import cast

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import Store, friendly
from ls_llmtrace.cli.evals import eval_group


@eval_group.command("judge")
@click.argument("golden_set", metavar="SET", type=click.Path(exists=True, path_type=Path))
@click.option("--judge", "kind", type=click.Choice(["rules", "learned", "llm"]),
              default=None, help="Which judge (default: LS_LLMTRACE_JUDGE; auto: llm when an "
              "endpoint is configured, else learned).")
@click.option("--name", default=None,
              help="The judge's name across versions (default: llmtrace-<judge>).")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Schema file (default: the set manifest's version from "
              "LS_LLMTRACE_SCHEMA_DIR).")
@click.option("--tolerance", type=float, default=0.05, show_default=True,
              help="Fail when kappa drops below the reference's by more than this.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Record this evaluation in the store (--no-record: a dry run).")
@click.option("--bootstrap", "resamples", type=click.IntRange(0), default=1000,
              show_default=True, help="Bootstrap resamples for kappa's 95% interval.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly
def eval_judge(golden_set: Path, kind: str | None, name: str | None, schema_path: Path | None,
               tolerance: float, record: bool, resamples: int, seed: int,
               as_json: bool) -> None:
    """Re-run a judge on a golden set and compare its agreement with the reviewers
    (Cohen's kappa) with its last accepted version; exit 1 on a drop beyond the tolerance."""
    from ls_llmtrace.evals.judgegate import JudgeKind, build_judge, load_set, run_gate
    from ls_llmtrace.schema.model import load_schema

    chosen = kind or settings.judge_kind()
    if chosen == "auto":
        chosen = "llm" if settings.llm_base_url() else "learned"
    loaded = load_set(golden_set, load_schema(schema_path) if schema_path else None)
    with Store() as store:
        gate_judge = build_judge(cast(JudgeKind, chosen), loaded.schema, store, loaded.cases,
                                 name)
        concurrency = settings.judge_concurrency() if chosen == "llm" else 1
        show = not as_json and sys.stderr.isatty()
        with click.progressbar(length=len(loaded.cases), label="judging", file=sys.stderr,
                               hidden=not show) as bar:
            result = run_gate(store, loaded, gate_judge, tolerance=tolerance, record=record,
                              resamples=resamples, seed=seed, concurrency=concurrency,
                              progress=bar.update)
    if as_json:
        click.echo(json.dumps(result.as_json(), sort_keys=True))
    else:
        a, e = result.agreement, result.evaluation
        click.echo(f"judge {e.judge_name} {e.judge_version} on {e.set_id}: n {a.n}, "
                   f"kappa {a.kappa:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] "
                   f"({a.level:.0%}, {resamples} resamples), accuracy {a.accuracy:.3f}, "
                   f"TPR {_rate(a.tpr)}, TNR {_rate(a.tnr)}"
                   + (f", {result.abstained} without a verdict" if result.abstained else ""))
        for category, row in result.categories.items():
            extra = (f", named {row['named']}/{row['n']}" if "named" in row else "")
            click.echo(f"  {category}: failed {row['failed']}/{row['n']}{extra}")
        if not record:
            click.echo("not recorded (--no-record)")
    line = result.verdict_line()
    if result.passed:
        if not as_json:
            click.echo(line)
        return
    click.echo(line, err=True)
    sys.exit(1)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
