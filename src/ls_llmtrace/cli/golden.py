"""`golden build`: a versioned golden set from a queue's deciding reviewer records."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import TIME_FORMATS, Store, friendly, queue_option
from ls_llmtrace.cli.evals import golden_group


@golden_group.command("build")
@queue_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("golden"), show_default=True,
              help="Parent folder; the set is written to <out>/<set id>/.")
@click.option("--control-share", type=click.FloatRange(min=0.0), default=0.25,
              show_default=True,
              help="Controls = share x failures (rounded half up) passing traces.")
@click.option("--require-corrected", is_flag=True,
              help="Leave out (and count) failures without a corrected output.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the control sampling (a seeded hash of the trace id).")
@click.option("--no-dedupe", is_flag=True, help="Keep near-duplicate inputs.")
@click.option("--since", default=None, type=click.DateTime(TIME_FORMATS),
              help="Records given at or after (UTC unless an offset is given).")
@click.option("--until", default=None, type=click.DateTime(TIME_FORMATS),
              help="Records given before.")
@click.option("--model-version", default=None)
@click.option("--product-area", default=None)
@click.option("--promptfoo-provider", default=None,
              help="Provider of the promptfoo export (default openai:chat:gpt-4o-mini).")
@click.option("--promptfoo-base-url", default=None,
              help="apiBaseUrl of that provider (default: promptfoo's OPENAI_BASE_URL).")
@click.option("--promptfoo-grader", default=None,
              help="A grader provider for llm-rubric checks with the cases' rubric entries "
              "(default: none, only the local reference checks).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@friendly
def golden_build(queue: str | None, out_dir: Path, control_share: float,
                 require_corrected: bool, seed: int, no_dedupe: bool, since: datetime | None,
                 until: datetime | None, model_version: str | None, product_area: str | None,
                 promptfoo_provider: str | None, promptfoo_base_url: str | None,
                 promptfoo_grader: str | None, as_json: bool) -> None:
    """Build a golden set: the queue's failures (deciding reviewer record failing) plus
    passing controls, under the queue's current schema version; writes cases.jsonl,
    manifest.json, cases.parquet, promptfooconfig.yaml and openai_evals.jsonl."""
    from ls_llmtrace.evals.golden import BuildFilters, BuildOptions, build_golden, write_golden
    from ls_llmtrace.ingest import queues
    from ls_llmtrace.timeutil import to_utc

    name = queue or settings.default_queue()
    with Store() as store:
        found = queues.required(store, name)
        schema = queues.schema_of(found)
        golden = build_golden(
            store, schema, queue=found.name, project_id=found.project_id,
            filters=BuildFilters(since=to_utc(since), until=to_utc(until),
                                 model_version=model_version, product_area=product_area),
            options=BuildOptions(control_share=control_share,
                                 require_corrected=require_corrected, seed=seed,
                                 dedupe=not no_dedupe),
            schema_dir=settings.schema_dir())
    folder = write_golden(golden, out_dir, promptfoo_provider, promptfoo_base_url,
                          promptfoo_grader)
    if as_json:
        click.echo(json.dumps({**golden.manifest.model_dump(mode="json"),
                               "folder": str(folder)}))
        return
    counts = golden.manifest.counts
    click.echo(f"{golden.set_id}: {counts['failures']} failures + {counts['controls']} "
               f"controls in {folder}")
    for reason, n in counts["left_out"].items():
        click.echo(f"left out: {n} {reason.replace('_', ' ')}")
