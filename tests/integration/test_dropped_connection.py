"""Label Studio dropping the connection halfway: one line on stderr and exit code 3.

The CLI runs as a subprocess pointed at a loopback proxy (tests/support/cutting_proxy.py)
in front of the real test Label Studio. The proxy cuts the answer of a chosen request
mid-stream: a later page of a listing (which the SDK fetches lazily, while its pager is
iterated) or the first sync's export download (which the SDK streams).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cutting_proxy import CuttingProxy, cut_from_nth

from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio

REPO = Path(__file__).resolve().parents[2]
QUEUE = "dropped"
TASKS = 1001  # the client lists tasks 1000 a page: page 2 exists


def _env(home: Path, store: Path, url: str, token: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LS_LLMTRACE_") or k == "LS_LLMTRACE_LS_BIN"}
    env.update(LS_LLMTRACE_HOME=str(home), LS_LLMTRACE_DB=f"sqlite:///{store}",
               LS_LLMTRACE_LS_URL=url, LS_LLMTRACE_LS_TOKEN=token, **extra)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ls_llmtrace", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _traces(path: Path, count: int, prefix: str) -> Path:
    path.write_text("".join(json.dumps({"trace_id": f"{prefix}-{i}", "output": f"answer {i}."})
                            + "\n" for i in range(count)), encoding="utf-8")
    return path


# What the commands print on stderr while they work, before anything can fail.
PROGRESS = ("importing ", "  ... ")


def _one_line_exit_3(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 3 and the error as the one line on stderr besides progress lines."""
    assert result.returncode == 3, result.stderr[-3000:]
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith(PROGRESS)]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("Error: "), lines
    assert result.stderr.strip().endswith(lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def seeded(labelstudio: tuple[ManagedLabelStudio, Credentials],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A store and a queue project with more than one page of tasks, imported directly."""
    server, creds = labelstudio
    base = tmp_path_factory.mktemp("dropped")
    store = base / "store.sqlite"
    result = _cli(["import", str(_traces(base / "traces.jsonl", TASKS, "drop")),
                   "--queue", QUEUE], _env(base / "home", store, server.url, creds.token))
    assert result.returncode == 0, result.stderr[-3000:]
    project_id = LabelStudioClient(server.url, creds.token).find_project(
        f"llmtrace {QUEUE} | default@v1")
    assert project_id is not None
    yield store, project_id


def _copy(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store.sqlite"
    shutil.copy(store, copy)
    return copy


def test_import_dropped_on_a_later_page(
    labelstudio: tuple[ManagedLabelStudio, Credentials], seeded: tuple[Path, int],
    tmp_path: Path,
) -> None:
    """A fresh store reads back the queue's 1,001 existing tasks; page 2 breaks."""
    server, creds = labelstudio
    with CuttingProxy(server.url, cut_from_nth("GET /api/tasks/", 2)) as proxy:
        result = _cli(["import", str(_traces(tmp_path / "one.jsonl", 1, "drop-new")),
                       "--queue", QUEUE],
                      _env(tmp_path / "home", tmp_path / "fresh.sqlite", proxy.url,
                           creds.token))
    line = _one_line_exit_3(result)
    # keyset pages: the second page asks for the tasks after the first page's last id
    assert proxy.cut and all("GET /api/tasks/" in r and "tasks%3Aid" in r
                             for r in proxy.cut), proxy.cut
    assert f"Label Studio at {proxy.url} broke while trying to list tasks" in line, line


def test_predict_dropped_on_a_later_page(
    labelstudio: tuple[ManagedLabelStudio, Credentials], seeded: tuple[Path, int],
    backend: ManagedBackend, tmp_path: Path,
) -> None:
    server, creds = labelstudio
    store, _ = seeded
    with CuttingProxy(server.url, cut_from_nth("GET /api/tasks/", 2)) as proxy:
        assert backend.auth is not None
        result = _cli(["predict", "--queue", QUEUE, "--backend-url", backend.url],
                      _env(tmp_path / "home", _copy(store, tmp_path), proxy.url, creds.token,
                           LS_LLMTRACE_BACKEND_USER=backend.auth[0],
                           LS_LLMTRACE_BACKEND_PASSWORD=backend.auth[1]))
    line = _one_line_exit_3(result)
    assert proxy.cut and all("page=2" in r for r in proxy.cut), proxy.cut
    assert "broke while trying to list tasks" in line, line


def test_sync_dropped_on_a_later_page(
    labelstudio: tuple[ManagedLabelStudio, Credentials], seeded: tuple[Path, int],
    tmp_path: Path,
) -> None:
    """Paging the task list (keyset pages of 2): the second page breaks."""
    server, creds = labelstudio
    store, _ = seeded
    with CuttingProxy(server.url, cut_from_nth("GET /api/tasks/", 2)) as proxy:
        result = _cli(["sync"], _env(tmp_path / "home", _copy(store, tmp_path), proxy.url,
                                     creds.token, LS_LLMTRACE_SYNC_PAGE_SIZE="2",
                                     LS_LLMTRACE_SYNC_FIRST_EXPORT="0"))
    line = _one_line_exit_3(result)
    assert proxy.cut, proxy.requests
    assert "broke while trying to list tasks" in line, line


def test_first_sync_dropped_during_the_export_download(
    labelstudio: tuple[ManagedLabelStudio, Credentials], seeded: tuple[Path, int],
    ls_client: LabelStudioClient, tmp_path: Path,
) -> None:
    """The first sync reads the project through a snapshot export; its download breaks.
    Label Studio streams the file without a length (it closes the connection at the end),
    so the client sees a short file. The export is still deleted (it would keep its file
    in Label Studio)."""
    server, creds = labelstudio
    store, project_id = seeded
    with CuttingProxy(server.url, cut_from_nth("/download", 1)) as proxy:
        result = _cli(["sync"], _env(tmp_path / "home", _copy(store, tmp_path), proxy.url,
                                     creds.token, LS_LLMTRACE_SYNC_PAGE_SIZE="2",
                                     LS_LLMTRACE_SYNC_FIRST_EXPORT="1"))
    line = _one_line_exit_3(result)
    assert proxy.cut and all("/exports/" in r for r in proxy.cut), proxy.cut
    assert re.search(rf"export \d+ of project {project_id} from Label Studio at "
                     rf"{re.escape(proxy.url)} is cut short", line), line
    assert list(ls_client.sdk.projects.exports.list(id=project_id)) == []
