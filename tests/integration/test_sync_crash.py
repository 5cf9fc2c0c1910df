"""Crash test: the sync, run as its own process, killed with SIGKILL at random points of a
large sync many times, then run to the end: the store holds exactly the expected records,
none lost and none twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
TASKS = 3000
KILLS = 10


def _annotations(i: int) -> list[dict[str, Any]]:
    def one(verdict: str, score: float, why: str) -> dict[str, Any]:
        return {"result": [
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": [verdict]}},
            {"from_name": "score", "to_name": "answer", "type": "number",
             "value": {"number": score}},
            {"from_name": "explanation", "to_name": "answer", "type": "textarea",
             "value": {"text": [why]}}], "lead_time": 1.0 + i % 7}

    out = [one("fail" if i % 3 == 0 else "pass", (i % 101) / 100, f"first look at {i}")]
    if i % 4 == 0:
        out.append(one("pass", 0.5, f"second look at {i}"))
    return out


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sync_killed_at_random_points_ends_exact(
    ls_client: LabelStudioClient, labelstudio: tuple[ManagedLabelStudio, Credentials],
    tmp_path: Path,
) -> None:
    server, creds = labelstudio
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    project_id, _ = ls_client.push_schema(schema, queue="sync-killed")
    for start in range(0, TASKS, 1000):
        ls_client.import_tasks(project_id, [
            {**trace_to_task(Trace(trace_id=f"crash-{i}", output=f"answer {i}"), schema),
             "annotations": _annotations(i)} for i in range(start, start + 1000)])
    expected = Counter()
    for i in range(TASKS):
        for ann in _annotations(i):
            values = {r["from_name"]: r["value"] for r in ann["result"]}
            expected[(f"crash-{i}", values["verdict"]["choices"][0],
                      values["score"]["number"], values["explanation"]["text"][0])] += 1
    total = sum(expected.values())

    db = tmp_path / "store.sqlite"
    with Store(f"sqlite:///{db}") as store:
        store.remember_project(project_id, "sync-killed", schema.id, schema.version, "crash")
    env = {**os.environ, "LS_LLMTRACE_LS_URL": server.url, "LS_LLMTRACE_LS_TOKEN": creds.token,
           "LS_LLMTRACE_DB": f"sqlite:///{db}", "LS_LLMTRACE_HOME": str(tmp_path / "home"),
           "LS_LLMTRACE_SYNC_PAGE_SIZE": "100"}
    command = [sys.executable, "-m", "ls_llmtrace", "sync"]

    rng = random.Random(6)
    targets = sorted(rng.uniform(0.03, 0.97) * total for _ in range(KILLS))
    interrupted = 0
    for target in targets:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _count(db) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))  # land anywhere: mid-page, mid-commit, between pages
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            interrupted += 1
        proc.wait(timeout=30)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    partial = _count(db)
    assert interrupted >= KILLS // 2, f"only {interrupted} kills landed during a sync"
    assert 0 < partial < total

    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    with Store(f"sqlite:///{db}") as store:
        records = store.records(include_deleted=True)
        got = Counter((r.trace_id, r.label, r.score, r.explanation) for r in records)
        assert got == expected
        assert len({r.ls_annotation_id for r in records}) == total
        assert not any(r.deleted for r in records)
        assert store.synced_task_count(project_id) == TASKS
        assert store.rejected_results() == []

    again = subprocess.run([*command, "--json"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert '"records_written": 0' in again.stdout and '"tasks_seen": 0' in again.stdout
