"""Golden sets: regression cases from annotated traces."""

from __future__ import annotations

from pathlib import Path

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    Store,
    friendly,
    main,
    queue_option,
    schema_from,
    schema_option,
)


@main.group("golden")
def golden_group() -> None:
    """Golden sets: regression cases from annotated traces."""


@golden_group.command("export")
@schema_option
@queue_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("golden/golden.v0.jsonl"), show_default=True)
@friendly
def golden_export(schema_path: Path | None, queue: str | None, output: Path) -> None:
    """Write the failed traces with their corrected outputs as JSONL (by default with the
    schema of the queue's current version)."""
    from ls_llmtrace.evals.golden import export_golden  # (scikit-learn: only when run)
    from ls_llmtrace.ingest import queues

    with Store() as store:
        found = queues.known(store, queue or settings.default_queue())
        schema = (queues.schema_of(found) if found is not None and schema_path is None
                  else schema_from(schema_path))
        count = export_golden(store, schema, output)
    click.echo(f"wrote {count} cases to {output}")


@main.group("eval")
def eval_group() -> None:
    """Run golden sets: the regression gate for a candidate, and the gate for a judge."""
