"""Live traces in: ``ls-llmtrace collect``, the OTLP/HTTP receiver."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ls_llmtrace.cli.common import Store, friendly, main, queue_option, schema_option


@main.command("collect")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (with a token set: any; --no-auth: loopback only).")
@click.option("--port", type=int, default=None,
              help="Port (default: LS_LLMTRACE_COLLECT_PORT or 4318).")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="gunicorn threads answering exporters.")
@click.option("--no-auth", is_flag=True,
              help="Accept requests without a bearer token (loopback only).")
@click.option("--rules", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Queue rules (YAML) instead of one --queue.")
@click.option("--no-assemble", is_flag=True,
              help="Only receive into the spool (another collect on the store assembles).")
@click.option("--status", "show_status", is_flag=True,
              help="Print what the spool holds (received, waiting, refused with why) and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: as JSON.")
@queue_option
@schema_option
@friendly
def collect(host: str, port: int | None, threads: int, no_auth: bool, rules: Path | None,
            no_assemble: bool, show_status: bool, as_json: bool, queue: str | None,
            schema_path: Path | None) -> None:
    """Receive OTLP/HTTP traces and logs (`POST /v1/traces`, `/v1/logs`; protobuf or
    JSON, gzip) under gunicorn; every accepted span is committed to the store before the
    answer, then assembled per trace and routed into queues like `import`."""
    if show_status:
        _status(as_json)
        return
    from ls_llmtrace import settings
    from ls_llmtrace.collect.server import CollectOptions, serve

    serve(CollectOptions(host=host, port=port or settings.collect_port(), threads=threads,
                         no_auth=no_auth, queue=queue, rules=rules, schema=schema_path,
                         assemble=not no_assemble))


def _status(as_json: bool, shown: int = 5) -> None:
    with Store() as store:
        counts = store.collect_counts()
        rejects = store.collect_rejects(shown)
    if as_json:
        click.echo(json.dumps({**counts, "first_rejects": rejects}))
        return
    click.echo(f"spool: {counts['items']} items ({counts['items_waiting']} waiting), "
               f"{counts['traces']} traces ({counts['traces_waiting']} waiting), "
               f"{counts['rejects']} refused")
    for r in rejects:
        click.echo(f"  {r['signal']} {r['location']}.{r['field']}: {r['reason']}")
