"""Imports after a crash: the import, run as its own process, killed with SIGKILL while a
request to Label Studio is in flight (or anywhere else), then run again at once: every
trace ends in Label Studio exactly once, with no wait for the claim lease (600 s here, as
by default). Claims of an import that still runs are left to it and reported as such.

The fast test kills once; the stress run (``make stress``) kills many times.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]


def _state(db: Path) -> tuple[int, int]:
    """(claims sent and unfinished, claims finished) in the store, read-only."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            sent = conn.execute("SELECT COUNT(*) FROM queue_items WHERE sent_at IS NOT NULL "
                                "AND task_id IS NULL").fetchone()[0]
            done = conn.execute("SELECT COUNT(*) FROM queue_items WHERE task_id IS NOT NULL"
                                ).fetchone()[0]
            return int(sent), int(done)
    except sqlite3.Error:
        return 0, 0


def _traces(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({"trace_id": f"kill-{i:05d}", "output": f"answer {i}.",
                                  "messages": [{"role": "user", "content": f"q {i}"}]}) + "\n")
    return path


def _env(server: ManagedLabelStudio, creds: Credentials, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LS_LLMTRACE_LS_URL": server.url, "LS_LLMTRACE_LS_TOKEN": creds.token,
            "LS_LLMTRACE_DB": f"sqlite:///{tmp_path / 'store.sqlite'}",
            "LS_LLMTRACE_HOME": str(tmp_path / "home"), "LS_LLMTRACE_CLAIM_LEASE_S": "600"}


def _in_label_studio(client: LabelStudioClient, project_id: int) -> Counter[str]:
    return Counter(trace for _, trace in client.task_trace_ids(project_id))


def _kill_and_rerun(client: LabelStudioClient, server: ManagedLabelStudio, creds: Credentials,
                    tmp_path: Path, traces: int, kills: int, seed: int) -> None:
    path = _traces(tmp_path / "traces.jsonl", traces)
    db = tmp_path / "store.sqlite"
    env = _env(server, creds, tmp_path)
    command = [sys.executable, "-m", "ls_llmtrace", "import", str(path), "--queue",
               f"killed{seed}", "--batch-size", "200"]
    rng = random.Random(seed)
    landed = in_flight = 0
    for _ in range(kills):
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        # Most kills land while a request is in Label Studio's hands (the dangerous
        # moment: its tasks may be created after the importer is gone); some anywhere.
        aim_in_flight = rng.random() < 0.7
        _, done_before = _state(db)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            sent, done = _state(db)
            if (sent if aim_in_flight else done > done_before):
                break
            time.sleep(0.005)
        if not aim_in_flight:
            time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            in_flight += _state(db)[0] > 0
            os.kill(proc.pid, signal.SIGKILL)
            landed += 1
        proc.wait(timeout=30)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert landed >= max(1, kills // 2), f"only {landed} of {kills} kills landed in an import"
    with Store(f"sqlite:///{db}") as store:
        [project_id] = {q["project_id"] for q in store.queues()}
        open_claims = [i for i in store.queue_items() if i["task_id"] is None]
    # A sent claim whose request Label Studio finished after the kill is found by the
    # next run's read-back (a duplicate, not a take-over); an unsent one cannot be, so
    # the next run must take it over.
    unsent = sum(1 for i in open_claims if i["sent_at"] is None)

    # Run again at once: no lease to wait for, nothing skipped as a "duplicate".
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    final = _in_label_studio(client, project_id)
    assert set(final) == {f"kill-{i:05d}" for i in range(traces)}, "traces missing"
    assert max(final.values()) == 1, [t for t, n in final.items() if n > 1][:5]
    assert "left to another import" not in done.stdout, done.stdout
    taken = re.search(r"taken over from a crashed import (\d+)", done.stdout)
    taken_over = int(taken.group(1)) if taken else 0
    assert unsent <= taken_over <= len(open_claims), (unsent, len(open_claims), done.stdout)
    with Store(f"sqlite:///{db}") as store:
        items = store.queue_items()
        assert len(items) == traces and all(i["task_id"] is not None for i in items)
        ledger = dict(store.conn.execute(
            "SELECT trace_id, task_id FROM ls_tasks WHERE project_id=?", (project_id,)))
    assert len(ledger) == traces
    # and a third run changes nothing
    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "imported 0" in again.stdout and f"duplicates {traces}" in again.stdout, again.stdout
    assert _in_label_studio(client, project_id) == final


def test_import_killed_mid_request_is_finished_by_the_next_run_at_once(
    ls_client: LabelStudioClient, labelstudio: tuple[ManagedLabelStudio, Credentials],
    tmp_path: Path,
) -> None:
    server, creds = labelstudio
    _kill_and_rerun(ls_client, server, creds, tmp_path, traces=1000, kills=2, seed=1)


@pytest.mark.stress
def test_import_killed_many_times_ends_exact(
    ls_client: LabelStudioClient, labelstudio: tuple[ManagedLabelStudio, Credentials],
    tmp_path: Path,
) -> None:
    server, creds = labelstudio
    _kill_and_rerun(ls_client, server, creds, tmp_path, traces=5000, kills=15, seed=2)


HOLDER = """
import sys, time
from ls_llmtrace.ingest import claimant
from ls_llmtrace.store import Store
project_id, keys = int(sys.argv[1]), sys.argv[2:]
with Store() as store:
    held = store.claim(project_id, "held", [(k, "held by a live import") for k in keys],
                       claimant.own_name())
print(len(held), flush=True)
time.sleep(600)
"""


def test_claims_of_a_running_import_are_left_to_it_and_reported(
    ls_client: LabelStudioClient, labelstudio: tuple[ManagedLabelStudio, Credentials],
    tmp_path: Path,
) -> None:
    """Another import, alive, holds 30 of the traces: they are neither imported nor called
    duplicates; once that import is gone (killed), the next run takes them over at once."""
    server, creds = labelstudio
    env = _env(server, creds, tmp_path)
    path = _traces(tmp_path / "traces.jsonl", 100)
    command = [sys.executable, "-m", "ls_llmtrace", "import", str(path), "--queue", "held"]
    first = subprocess.run([*command[:4], str(_traces(tmp_path / "one.jsonl", 1)),
                            *command[5:]], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    with Store(env["LS_LLMTRACE_DB"]) as store:
        [project_id] = {q["project_id"] for q in store.queues()}
    held = [f"kill-{i:05d}" for i in range(40, 70)]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(project_id), *held], env=env,
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "30"
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert "imported 69" in done.stdout and "duplicates 1," in done.stdout, done.stdout
        assert "left to another import still running 30" in done.stdout, done.stdout
        assert set(_in_label_studio(ls_client, project_id)).isdisjoint(held)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "imported 30" in again.stdout, again.stdout
    assert "taken over from a crashed import 30" in again.stdout, again.stdout
    final = _in_label_studio(ls_client, project_id)
    assert set(final) == {f"kill-{i:05d}" for i in range(100)} and max(final.values()) == 1
