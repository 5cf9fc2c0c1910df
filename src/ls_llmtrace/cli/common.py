"""What every command shares: one-line errors, the Label Studio client, common options.

Start-up: ``ls-llmtrace --help`` and every command import this package's command modules,
so those import only click and the settings at the top. The store, the schema models and
the Label Studio client (the SDK brings pandas) are loaded by the command that uses them:
through the stand-ins below, or with an import inside the command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ls_llmtrace import settings
from ls_llmtrace.errors import LLMTraceError

if TYPE_CHECKING:
    from ls_llmtrace.ingest.importers import write_rejects
    from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
    from ls_llmtrace.schema.model import AnnotationSchema, load_schema, load_schema_dir
    from ls_llmtrace.store import Store
else:
    # Stand-ins that import the real thing when first called (see the module docstring).

    def Store(*args: Any, **kwargs: Any) -> Any:  # noqa: N802  (the class, when called)
        from ls_llmtrace.store import Store as cls

        return cls(*args, **kwargs)

    def load_schema(*args: Any, **kwargs: Any) -> Any:
        from ls_llmtrace.schema.model import load_schema as real

        return real(*args, **kwargs)

    def load_schema_dir(*args: Any, **kwargs: Any) -> Any:
        from ls_llmtrace.schema.model import load_schema_dir as real

        return real(*args, **kwargs)

    def project_title(*args: Any, **kwargs: Any) -> Any:
        from ls_llmtrace.labelstudio.client import project_title as real

        return real(*args, **kwargs)

    def write_rejects(*args: Any, **kwargs: Any) -> Any:
        from ls_llmtrace.ingest.importers import write_rejects as real

        return real(*args, **kwargs)

F = TypeVar("F", bound=Callable[..., Any])
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S"]


def _fail(exc: LLMTraceError) -> NoReturn:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(exc.exit_code)


def friendly(fn: F) -> F:
    """Turn our errors into one line and a meaningful exit code (LS_LLMTRACE_DEBUG=1: the
    traceback). :class:`GuardedGroup` does the same for every command; this decorator
    keeps a command friendly when it is called on its own."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LLMTraceError as exc:
            if settings.debug():
                raise
            _fail(exc)

    return wrapper  # type: ignore[return-value]


class GuardedGroup(click.Group):
    """The top command group: whatever subcommand runs, our errors end as one line and
    their exit code, so no command can forget the guard."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LLMTraceError as exc:
            if settings.debug():
                raise
            _fail(exc)


def client() -> LabelStudioClient:
    """The configured Label Studio (the resolver the backend and the Feedback API use)."""
    from ls_llmtrace.labelstudio.connect import resolve_client

    return resolve_client()


def schema_option(fn: F) -> F:
    return click.option(
        "--schema", "schema_path", type=click.Path(dir_okay=False, path_type=Path),
        default=None, help="Schema file (default: the queue's current version; a new queue "
        "starts at LS_LLMTRACE_SCHEMA or label_configs/default.v1.yaml).",
    )(fn)


def queue_option(fn: F) -> F:
    return click.option(
        "--queue", default=None,
        help="Queue (Label Studio project) name (default: LS_LLMTRACE_QUEUE or 'review').",
    )(fn)


SHOWN_REJECTS = 5  # rejects printed before the rest are only counted


def keep_rejects(lines: list[str], write: Callable[[Path], None], source: Path,
                  explicit: Path | None) -> None:
    """Report rejected items (the first few, then the count) and keep them all aside
    (default <home>/rejects/<file>.rejects.jsonl)."""
    for line in lines[:SHOWN_REJECTS]:
        click.echo(f"rejected: {line[:300]}", err=True)
    if len(lines) > SHOWN_REJECTS:
        click.echo(f"... and {len(lines) - SHOWN_REJECTS} more rejected", err=True)
    if lines:
        path = explicit or settings.home() / "rejects" / f"{source.name}.rejects.jsonl"
        write(path)
        click.echo(f"rejected lines kept in {path}", err=True)


def schema_from(path: Path | None) -> AnnotationSchema:
    return load_schema(path or settings.default_schema_path())


@click.group(cls=GuardedGroup,
             help="ls-llmtrace: tie LLM feedback to traces through Label Studio.")
@click.version_option(package_name="ls-llmtrace")
def main() -> None:
    pass
