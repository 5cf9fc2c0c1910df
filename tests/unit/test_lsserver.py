"""Start-up failures of the managed Label Studio give clear errors (no server needed)."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from ls_llmtrace.errors import LabelStudioStartError
from ls_llmtrace.labelstudio.server import ManagedLabelStudio, free_port


def _fake_executable(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "label-studio"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_missing_executable_says_how_to_install(tmp_path: Path) -> None:
    server = ManagedLabelStudio(tmp_path / "data", free_port(), tmp_path / "nope" / "label-studio")
    with pytest.raises(LabelStudioStartError, match="make setup"):
        server.start(timeout=5)


def test_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = ManagedLabelStudio(tmp_path / "data", port, _fake_executable(tmp_path, "sleep 60"))
        with pytest.raises(LabelStudioStartError, match=f"port {port} is already in use"):
            server.start(timeout=5)


def test_crash_on_start_shows_the_log_tail(tmp_path: Path) -> None:
    exe = _fake_executable(tmp_path, 'echo "django.db.utils.OperationalError: disk full"; exit 3')
    server = ManagedLabelStudio(tmp_path / "data", free_port(), exe)
    with pytest.raises(LabelStudioStartError) as info:
        server.start(timeout=10)
    assert "exited with code 3" in str(info.value)
    assert "disk full" in str(info.value)


def test_timeout_stops_the_process_and_shows_the_log(tmp_path: Path) -> None:
    exe = _fake_executable(tmp_path, 'echo "still migrating"; exec sleep 60')
    server = ManagedLabelStudio(tmp_path / "data", free_port(), exe)
    with pytest.raises(LabelStudioStartError) as info:
        server.start(timeout=2)
    assert "did not answer" in str(info.value) and "still migrating" in str(info.value)
    assert server.pid() is None  # the stray process was stopped


def test_child_environment_drops_variables_label_studio_would_adopt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.setenv("USERNAME", "someone")
    monkeypatch.setenv("LABEL_STUDIO_PORT", "1234")
    server = ManagedLabelStudio(tmp_path / "data", free_port(), tmp_path / "x")
    env = server._environment(server.credentials())
    assert "PORT" not in env and "USERNAME" not in env and "LABEL_STUDIO_PORT" not in env
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["COLLECT_ANALYTICS"] == "false" and env["SENTRY_DSN"] == ""
    creds = server.credentials()
    assert len(creds.token) == 40 and server.credentials() == creds  # kept across calls
    assert (server.credentials_file.stat().st_mode & 0o777) == 0o600
