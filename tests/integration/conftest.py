"""A real Label Studio 1.23.2 (own virtualenv, loopback, temp data dir), once per session.

Never mocked. The ML backend runs as its own gunicorn process, as in production.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ls_llmtrace import settings
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def labelstudio(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ManagedLabelStudio, Credentials]]:
    executable = settings.ls_bin()
    if not executable.exists():
        pytest.fail(f"Label Studio is not installed at {executable}: run `make setup` first")
    server = ManagedLabelStudio(tmp_path_factory.mktemp("labelstudio"), free_port(), executable)
    creds = server.start(timeout=300)
    yield server, creds
    server.stop()


@pytest.fixture(scope="session")
def ls_client(labelstudio: tuple[ManagedLabelStudio, Credentials]) -> LabelStudioClient:
    server, creds = labelstudio
    return LabelStudioClient(server.url, creds.token)


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedBackend]:
    run_dir = tmp_path_factory.mktemp("backend")
    managed = ManagedBackend(run_dir, free_port())
    managed.start(env={"LS_LLMTRACE_HOME": str(run_dir)})
    yield managed
    managed.stop()


@pytest.fixture
def ls_env(labelstudio: tuple[ManagedLabelStudio, Credentials], tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI and settings at the test Label Studio and a fresh store."""
    server, creds = labelstudio
    monkeypatch.setenv("LS_LLMTRACE_LS_URL", server.url)
    monkeypatch.setenv("LS_LLMTRACE_LS_TOKEN", creds.token)
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.chdir(REPO)
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.labelstudio)


os.environ.setdefault("LS_LLMTRACE_LS_START_TIMEOUT", "300")
