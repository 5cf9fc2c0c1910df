"""Schema commands: push a version to its queue, generate configs, diff, migration log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ls_llmtrace import settings
from ls_llmtrace.cli.common import (
    Store,
    client,
    friendly,
    load_schema,
    load_schema_dir,
    main,
    project_title,
    queue_option,
)

# schema ---------------------------------------------------------------------------------

@main.group("schema")
def schema_group() -> None:
    """Annotation schemas and their Label Studio configs."""


@schema_group.command("push")
@click.argument("schema_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@queue_option
@click.option("--migration", "migration_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Migration file for an incompatible version (rewrites annotations).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def schema_push(schema_file: Path | None, queue: str | None, migration_file: Path | None,
                dry_run: bool, as_json: bool) -> None:
    """Create or update the Label Studio project of a schema version.

    A queue whose project is at an older version of the schema is moved to this version
    in place; an incompatible change is refused (exit 5, naming what would be orphaned)
    unless --migration is given. Older versions are read from the schema file's folder.
    """
    from ls_llmtrace.records.migrate import push_schema_version
    from ls_llmtrace.schema.migration import load_migration

    queue = queue or settings.default_queue()
    path = schema_file or settings.default_schema_path()
    schema = load_schema(path)
    known = load_schema_dir(path.parent)
    migration = load_migration(migration_file) if migration_file else None
    with Store() as store:
        outcome = push_schema_version(client(), store, schema, queue, known, migration,
                                      dry_run=dry_run)
    filled = outcome.migrated.tasks_filled if outcome.migrated else outcome.tasks_filled
    if as_json:
        click.echo(json.dumps({
            "project_id": outcome.project_id, "created": outcome.created,
            "from_version": outcome.from_version, "changes": [
                c.as_dict() for c in outcome.changes],
            "migration": outcome.migrated.as_dict() if outcome.migrated else None,
            "tasks_filled": filled}))
        return
    for change in outcome.changes:
        click.echo(change.line())
    if outcome.note:
        click.echo(outcome.note)
    if outcome.migrated is not None:
        for line in outcome.migrated.lines():
            click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was written")
        return
    if filled:
        click.echo(f"{filled} tasks converted before the review screen's layout were given "
                   "its keys (metadata text, sections)")
    verb = "created" if outcome.created else "updated"
    click.echo(f"{verb} project {outcome.project_id} '{project_title(schema, queue)}'")


@schema_group.command("generate")
@click.argument("directory", default="label_configs",
                type=click.Path(file_okay=False, path_type=Path))
@friendly
def schema_generate(directory: Path) -> None:
    """Write the label config XML beside every schema file in DIRECTORY."""
    from ls_llmtrace.schema.labelconfig import write_label_config

    for schema in load_schema_dir(directory).values():
        click.echo(f"wrote {write_label_config(schema, directory)}")


# schema diff and migration log --------------------------------------------------------------

@schema_group.command("diff")
@click.argument("old_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--migration", "migration_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Name renames, merges and splits from this migration file, and check it.")
@click.option("--json", "as_json", is_flag=True)
def schema_diff(old_file: Path, new_file: Path, migration_file: Path | None,
                as_json: bool) -> None:
    """List the changes from OLD to NEW and classify them.

    Exit 0: no change; 1: compatible changes only; 4: incompatible changes (a push over a
    project with annotations needs a migration); 2: a file is invalid.
    """
    from ls_llmtrace.schema.diff import diff_schemas, exit_code
    from ls_llmtrace.schema.migration import check_migration, load_migration

    @friendly
    def run() -> int:
        old, new = load_schema(old_file), load_schema(new_file)
        migration = load_migration(migration_file) if migration_file else None
        if migration is not None:
            changes = check_migration(migration, old, new)
        else:
            changes = diff_schemas(old, new)
        if as_json:
            click.echo(json.dumps([c.as_dict() for c in changes]))
        else:
            for change in changes:
                click.echo(change.line())
            if not changes:
                click.echo(f"{old.version_id} and {new.version_id} ask the same")
        return exit_code(changes)

    sys.exit(run())


@schema_group.command("migrations")
@click.option("--reviews", is_flag=True, help="List the review queue instead of the log.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def schema_migrations(reviews: bool, as_json: bool) -> None:
    """The log of applied schema migrations (or their review queue)."""
    with Store() as store:
        rows = store.migration_reviews() if reviews else store.applied_migrations()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("none")
    for row in rows:
        if reviews:
            click.echo(f"{row['run_id']}\tannotation {row['annotation_id']}\t{row['field']} "
                       f"{row['value']!r}\t{row['reason']}")
        else:
            click.echo(f"{row['finished_at']}\tproject {row['project_id']}\t"
                       f"{row['schema_id']} v{row['from_version']} -> v{row['to_version']}\t"
                       f"{row['migration_name']}")
