"""Every command ends our errors in one line and their exit code, and finds its Label
Studio through the one resolver the ML backend and the Feedback API use."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from ls_llmtrace import settings
from ls_llmtrace.cli import main
from ls_llmtrace.cli.common import client
from ls_llmtrace.errors import LabelStudioError
from ls_llmtrace.judging.backend import _ls_client
from ls_llmtrace.labelstudio.connect import label_studio_from_settings, resolve_client
from ls_llmtrace.labelstudio.server import ManagedLabelStudio
from ls_llmtrace.records.feedbackapi import SyncTrigger, default_sync_runner
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LS_LLMTRACE_LS_URL", "LS_LLMTRACE_LS_TOKEN", "LS_LLMTRACE_LS_PORT",
                 "LS_LLMTRACE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    return tmp_path / "home"


def _managed_token(home: Path) -> str:
    path = ManagedLabelStudio().credentials_file
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"email": "a@b.c", "password": "pw", "token": "managed-tok"}))
    return "managed-tok"


@pytest.mark.parametrize("args", [["ls", "status"], ["down"], ["backend", "down"],
                                  ["ls", "down"]])
def test_a_bad_setting_is_one_line_for_every_command(
    home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("LS_LLMTRACE_LS_PORT", "eighty")
    monkeypatch.setenv("LS_LLMTRACE_BACKEND_PORT", "ninety")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: LS_LLMTRACE_"), result.stderr
    assert "is not a whole number" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_one_resolver_settings_first_then_the_managed_token(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert label_studio_from_settings() is None
    assert _ls_client() is None
    with pytest.raises(LabelStudioError, match="LS_LLMTRACE_LS_TOKEN"):
        client()
    token = _managed_token(home)
    for found in (resolve_client(), client(), _ls_client()):
        assert found is not None
        assert (found.url, found.token) == (settings.ls_url(), token)
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("LS_LLMTRACE_LS_TOKEN", "env-tok")
    for found in (resolve_client(), client(), _ls_client()):
        assert found is not None
        assert (found.url, found.token) == ("http://127.0.0.1:9", "env-tok")


def test_an_unreadable_credentials_file_is_one_clear_error(home: Path) -> None:
    path = ManagedLabelStudio().credentials_file
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(LabelStudioError, match="credentials .*llmtrace-credentials.json"):
        resolve_client()


def test_the_feedback_api_syncs_through_the_same_resolver(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the managed token and a URL where nothing listens, the webhook-triggered
    sync fails on the connection (it got a client from the resolver), not on a token."""
    _managed_token(home)
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", "http://127.0.0.1:9")
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    with Store() as store:
        store.remember_project(7, "review", schema.id, schema.version, "llmtrace review")
    run = default_sync_runner(None, {(schema.id, schema.version): schema})
    with pytest.raises(LabelStudioError, match=r"no Label Studio at http://127\.0\.0\.1:9 "):
        run(7)


def test_a_failed_webhook_sync_logs_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _managed_token(home)
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", "http://127.0.0.1:9")
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    with Store() as store:
        store.remember_project(7, "review", schema.id, schema.version, "llmtrace review")
    trigger = SyncTrigger(default_sync_runner(None, {(schema.id, schema.version): schema}))
    with caplog.at_level(logging.ERROR, logger="ls_llmtrace.records.feedbackapi"):
        trigger.request(7)
        trigger.wait()
    assert (trigger.runs, trigger.failures) == (0, 1)
    [record] = [r for r in caplog.records if "project 7" in r.getMessage()]
    assert "no Label Studio at http://127.0.0.1:9 " in record.getMessage()
    assert record.exc_info is None
