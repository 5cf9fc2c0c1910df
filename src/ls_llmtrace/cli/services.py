"""Processes: the managed Label Studio, the managed ML backend, the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ls_llmtrace.cli.common import (
    friendly,
    main,
)
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.labelstudio.server import ManagedLabelStudio

# Label Studio and backend processes ----------------------------------------------------

@main.group("ls")
def ls_group() -> None:
    """Run the managed local Label Studio (own virtualenv, loopback, data in LS_LLMTRACE_HOME)."""


@ls_group.command("up")
@friendly
def ls_up() -> None:
    """Start Label Studio (or find it running) and print how to log in."""
    managed = ManagedLabelStudio()
    creds = managed.start()
    click.echo(f"Label Studio is up at {managed.url}  login {creds.email} / {creds.password}")


@ls_group.command("down")
@friendly
def ls_down() -> None:
    """Stop the managed Label Studio."""
    click.echo("stopped" if ManagedLabelStudio().stop() else "was not running")


@ls_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def ls_status(as_json: bool) -> None:
    """Is the managed Label Studio running and answering?"""
    status = ManagedLabelStudio().status()
    if as_json:
        click.echo(json.dumps(status))
    else:
        state = "running" if status["answers"] else "not running"
        click.echo(f"Label Studio {state} at {status['url']} (data {status['data_dir']})")
    sys.exit(0 if status["answers"] else 1)


@ls_group.command("add-user")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print email, id and token as JSON.")
@friendly
def ls_add_user(email: str, as_json: bool) -> None:
    """Add a reviewer to the managed Label Studio (its admin's organization) and print the
    reviewer's own API token (idempotent: an existing user's token is printed)."""
    from ls_llmtrace.labelstudio.client import LabelStudioClient

    managed = ManagedLabelStudio()
    creds = managed.start()
    user_id = LabelStudioClient(managed.url, creds.token).create_user(email)
    token = managed.user_token(email)
    if as_json:
        click.echo(json.dumps({"email": email, "id": user_id, "token": token}))
    else:
        click.echo(f"user {email} (id {user_id}) token {token}")


@main.group("backend")
def backend_group() -> None:
    """Run the managed ML backend (the judge) that Label Studio calls."""


@backend_group.command("up")
@friendly
def backend_up() -> None:
    """Start the ML backend in the background."""
    click.echo(f"ML backend is up at {ManagedBackend().start()}")


@backend_group.command("down")
def backend_down() -> None:
    """Stop the ML backend."""
    click.echo("stopped" if ManagedBackend().stop() else "was not running")


# demo ---------------------------------------------------------------------------------------

@main.command("demo")
@click.option("--traces", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("examples/sample_traces.jsonl"), show_default=True)
@friendly
def demo_cmd(traces: Path) -> None:
    """Start everything, import the samples into the default queue (at its current schema
    version; a new queue starts at v1), get the judge's predictions."""
    from ls_llmtrace.demo import run_demo

    run_demo(traces, echo=click.echo)


@main.command("down")
def down_cmd() -> None:
    """Stop the ML backend and Label Studio started by `demo`."""
    click.echo("backend: " + ("stopped" if ManagedBackend().stop() else "was not running"))
    click.echo("Label Studio: " + ("stopped" if ManagedLabelStudio().stop() else "was not running"))
