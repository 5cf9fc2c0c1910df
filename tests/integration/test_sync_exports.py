"""The first sync's snapshot exports against the real Label Studio, with the sync run as
its own process through the loopback proxy (tests/support/cutting_proxy.py), killed or
cut at chosen requests.

- a SIGKILL while the export downloads leaves it in Label Studio (nothing can run after
  SIGKILL): the next sync deletes it (the store noted it) and pages instead;
- a SIGTERM there runs the sync's ``finally``: the export is deleted at once;
- exports a crashed run left that this store never noted are recognized by their title
  (``ls-llmtrace sync <host> pid <pid>``): a dead pid on this host, or the bare title of
  earlier versions, is deleted; a live pid's export and anyone else's are left alone;
- killed at every export download and cut after two pages every time, first syncs still
  make progress, and the final sync ends exact: nothing lost, nothing twice.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.cutting_proxy import CuttingProxy

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.labelstudio.client import EXPORT_TITLE_PREFIX, LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import Trace
from ls_llmtrace.records.sync import sync_project
from ls_llmtrace.schema.model import AnnotationSchema, load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
TASKS = 600
PAGE = 100


def _annotation(i: int) -> dict[str, Any]:
    return {"result": [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail" if i % 3 == 0 else "pass"]}},
        {"from_name": "explanation", "to_name": "answer", "type": "textarea",
         "value": {"text": [f"look {i}"]}}]}


@pytest.fixture(scope="module")
def schema() -> AnnotationSchema:
    return load_schema(REPO / "label_configs" / "default.v1.yaml")


@pytest.fixture(scope="module")
def project(ls_client: LabelStudioClient, schema: AnnotationSchema) -> int:
    project_id, _ = ls_client.push_schema(schema, queue="sync-exports")
    ls_client.import_tasks(project_id, [
        {**trace_to_task(Trace(trace_id=f"exp-{i}", output=f"answer {i}"), schema),
         "annotations": [_annotation(i)]} for i in range(TASKS)])
    return project_id


def _our_exports(ls: LabelStudioClient, project_id: int) -> list[Any]:
    return [e for e in ls.sdk.projects.exports.list(id=project_id)
            if (e.title or "").startswith(EXPORT_TITLE_PREFIX)]


def _store(path: Path, project_id: int, schema: AnnotationSchema) -> Path:
    with Store(f"sqlite:///{path}") as store:
        store.remember_project(project_id, "sync-exports", schema.id, schema.version, "t")
    return path


def _count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])


class SyncProcess:
    """``ls-llmtrace sync`` as a child process pointed at ``url``."""

    def __init__(self, url: str, token: str, db: Path, home: Path) -> None:
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("LS_LLMTRACE_")
                       or k == "LS_LLMTRACE_LS_BIN"},
                    "LS_LLMTRACE_LS_URL": url, "LS_LLMTRACE_LS_TOKEN": token,
                    "LS_LLMTRACE_DB": f"sqlite:///{db}", "LS_LLMTRACE_HOME": str(home),
                    "LS_LLMTRACE_SYNC_PAGE_SIZE": str(PAGE)}
        self.pid: int | None = None

    def run(self) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen([sys.executable, "-m", "ls_llmtrace", "sync"], cwd=REPO,
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.pid = proc.pid
        out, err = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _on_download(action: Callable[[], None], hold: float = 0.0
                 ) -> Callable[[int, str], bool]:
    """A proxy rule: at each export download, ``action()`` (signal the sync), then hold
    the request ``hold`` seconds, then cut it."""
    def rule(_index: int, line: str) -> bool:
        if "/exports/" in line and "/download" in line:
            action()
            time.sleep(hold)
            return True
        return False

    return rule


def test_sigkill_during_the_download_leaves_the_export_and_the_next_sync_removes_it(
        labelstudio: tuple[ManagedLabelStudio, Credentials], ls_client: LabelStudioClient,
        project: int, schema: AnnotationSchema, tmp_path: Path) -> None:
    server, creds = labelstudio
    db = _store(tmp_path / "store.sqlite", project, schema)
    sync = SyncProcess("", creds.token, db, tmp_path / "home")
    killed = threading.Event()

    def kill() -> None:
        assert sync.pid is not None
        os.kill(sync.pid, signal.SIGKILL)
        killed.set()

    with CuttingProxy(server.url, _on_download(kill)) as proxy:
        sync.env["LS_LLMTRACE_LS_URL"] = proxy.url
        result = sync.run()
    assert killed.is_set() and result.returncode == -signal.SIGKILL
    left = _our_exports(ls_client, project)
    assert len(left) == 1 and left[0].title.endswith(f"pid {sync.pid}")
    assert _count(db) == 0  # the export is all or nothing: nothing was written

    with CuttingProxy(server.url, lambda _i, _line: False) as proxy:
        sync.env["LS_LLMTRACE_LS_URL"] = proxy.url
        again = sync.run()
    assert again.returncode == 0, again.stderr
    assert "1 exports of interrupted syncs removed" in again.stdout
    assert _our_exports(ls_client, project) == []
    assert not any("POST" in r and "/exports" in r for r in proxy.requests)  # it paged
    assert _count(db) == TASKS  # one record per annotation


def test_sigterm_during_the_download_deletes_the_export_at_once(
        labelstudio: tuple[ManagedLabelStudio, Credentials], ls_client: LabelStudioClient,
        project: int, schema: AnnotationSchema, tmp_path: Path) -> None:
    server, creds = labelstudio
    db = _store(tmp_path / "store.sqlite", project, schema)
    sync = SyncProcess("", creds.token, db, tmp_path / "home")

    def term() -> None:
        assert sync.pid is not None
        os.kill(sync.pid, signal.SIGTERM)

    with CuttingProxy(server.url, _on_download(term, hold=1.0)) as proxy:
        sync.env["LS_LLMTRACE_LS_URL"] = proxy.url
        result = sync.run()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert any("DELETE" in r and "/exports/" in r for r in proxy.requests), proxy.requests
    assert _our_exports(ls_client, project) == []  # before: left behind every time
    with Store(f"sqlite:///{db}") as store:
        assert store.sync_exports_left(project) == []  # noted, and noted as gone


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_are_recognized_by_their_title(
        ls_client: LabelStudioClient, project: int, schema: AnnotationSchema,
        tmp_path: Path) -> None:
    """A store that never saw them: exports of a dead pid on this host and the bare title
    of earlier versions go; a live pid's, another host's recent one and others' stay."""
    host = socket.gethostname()
    titles = {
        "dead": f"{EXPORT_TITLE_PREFIX} {host} pid {_dead_pid()}",
        "legacy": EXPORT_TITLE_PREFIX,
        "live": f"{EXPORT_TITLE_PREFIX} {host} pid {os.getppid()}",
        "elsewhere": f"{EXPORT_TITLE_PREFIX} other-host pid 1",
        "foreign": "quarterly export",
    }
    exports = ls_client.sdk.projects.exports
    made = {name: int(exports.create(id=project, title=title).id)
            for name, title in titles.items()}
    try:
        with Store(f"sqlite:///{_store(tmp_path / 's.sqlite', project, schema)}") as store:
            summary = sync_project(ls_client, store, project, schema, page_size=PAGE)
        assert summary.exports_removed == 2
        remaining = {int(e.id) for e in exports.list(id=project)}
        assert made["dead"] not in remaining and made["legacy"] not in remaining
        assert {made["live"], made["elsewhere"], made["foreign"]} <= remaining
    finally:
        for export_id in made.values():
            ls_client.delete_export(project, export_id)


def test_first_syncs_interrupted_again_and_again_still_make_progress(
        labelstudio: tuple[ManagedLabelStudio, Credentials], ls_client: LabelStudioClient,
        project: int, schema: AnnotationSchema, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every run is SIGKILLed at an export download and cut at its third task listing.
    Before: every run started a new export and was killed in it, keeping nothing (and
    leaving one more export behind). Now the second run pages and keeps two pages a run."""
    server, creds = labelstudio
    db = _store(tmp_path / "store.sqlite", project, schema)
    sync = SyncProcess("", creds.token, db, tmp_path / "home")
    listings = 0
    lock = threading.Lock()

    def rule(_index: int, line: str) -> bool:
        nonlocal listings
        if "/exports/" in line and "/download" in line:
            assert sync.pid is not None
            os.kill(sync.pid, signal.SIGKILL)
            return True
        if line.startswith("GET /api/tasks/"):
            with lock:
                listings += 1
                return listings >= 3
        return False

    counts = []
    runs = 0
    while _count(db) < TASKS and runs < 12:
        listings = 0
        with CuttingProxy(server.url, rule) as proxy:
            sync.env["LS_LLMTRACE_LS_URL"] = proxy.url
            sync.run()
        runs += 1
        counts.append(_count(db))
    sync.env["LS_LLMTRACE_LS_URL"] = server.url  # and once more, straight to Label Studio
    done = sync.run()
    assert done.returncode == 0, done.stderr
    with capsys.disabled():
        print(f"\nrecords after each interrupted first sync: {counts} (of {TASKS})")
    assert counts[0] == 0  # killed in the export
    assert all(b > a for a, b in zip(counts[1:], counts[2:], strict=False)), counts
    assert counts[1] > 0
    with Store(f"sqlite:///{db}") as store:
        records = store.records(include_deleted=True)
        assert len(records) == TASKS
        assert len({r.record_key for r in records}) == TASKS
        assert not any(r.deleted for r in records)
        assert store.sync_exports_left(project) == []
    assert _our_exports(ls_client, project) == []
