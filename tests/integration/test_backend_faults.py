"""Fault tests: the ML backend (gunicorn, as in production) in front of a misbehaving LLM
provider (the local fake, each way it can fail), asked by the real Label Studio.

What they assert: every ``/predict`` answers within the budget, well inside Label Studio's
100 s; the good tasks of a batch get their prediction the first time; the others none,
and exactly one once the provider is fine again (nothing lost, nothing twice); ``/health``
answers within Label Studio's 1 s while the judge hangs. The full fault table (every
fault, several runs) is the ``stress`` test; the normal suite runs a mixed batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.fake_llm_server import FakeLLM, free_port
from tests.unit.judge_configs import FULL_CONFIG, ITEST_SCHEMA

from ls_llmtrace.judging.managed import BackendStartError, ManagedBackend, saved_credentials
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient

BUDGET = 6.0  # LS_LLMTRACE_PREDICT_BUDGET_S of the backend under test
SLACK = 10.0  # what Label Studio adds around a /predict (its reads and writes; 4.2 s measured
# on a loaded machine): still far from the 100 s after which Label Studio gives up
GOOD = json.dumps({"verdict": "pass", "score": 0.9, "confidence": 0.8,
                   "explanation": "Supported.", "categories": [], "spans": []})

# fault name -> the provider's scripted answer (repeated for every attempt)
FAULTS: dict[str, dict[str, Any]] = {
    "trickle": {"mode": "trickle", "content": GOOD, "interval": 0.5},
    "trickle_head": {"mode": "trickle_head", "content": GOOD, "interval": 0.5},
    "hang": {"mode": "hang"},
    "429_retry_after_30": {"status": 429, "headers": {"Retry-After": "30"}},
    "500": {"status": 500},
    "503_retry_after_2": {"status": 503, "headers": {"Retry-After": "2"}},
    "reset": {"mode": "reset"},
    "cut_mid_body": {"mode": "cut", "content": GOOD},
    "not_http": {"mode": "garbage"},
    "malformed_json": {"body": '{"choices": [{"message": {"content": "{oops'},
    "reply_not_json": {"content": "I think it passes."},
    "slow_10s": {"content": GOOD, "delay": 10},
}


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def faulty_backend(llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ManagedBackend]:
    run_dir = tmp_path_factory.mktemp("faults-backend")
    schemas = run_dir / "schemas"
    schemas.mkdir()
    (schemas / "itest.v1.yaml").write_text(ITEST_SCHEMA)
    managed = ManagedBackend(run_dir, free_port())
    managed.start(env={
        "LS_LLMTRACE_HOME": str(run_dir), "LS_LLMTRACE_LLM_BASE_URL": llm.base_url,
        "LS_LLMTRACE_LLM_MODEL": "fake-judge", "LS_LLMTRACE_JUDGE": "llm",
        "LS_LLMTRACE_LLM_TIMEOUT": "30", "LS_LLMTRACE_LLM_MAX_RETRIES": "3",
        "LS_LLMTRACE_LLM_RETRY_BASE": "0.2", "LS_LLMTRACE_SCHEMA_DIR": str(schemas),
        "LS_LLMTRACE_PREDICT_BUDGET_S": str(BUDGET), "LS_LLMTRACE_JUDGE_CONCURRENCY": "4",
        "LS_LLMTRACE_JUDGE_FEW_SHOT": "0", "LS_LLMTRACE_BACKEND_USER": "",
        "LS_LLMTRACE_BACKEND_PASSWORD": "", "LS_LLMTRACE_BACKEND_TOKEN": "",
        "LS_LLMTRACE_BACKEND_OPEN": "", "LS_LLMTRACE_WEBHOOK_SECRET": "",
        "LS_LLMTRACE_LS_TOKEN": "",
    })
    yield managed
    managed.stop()


def _project(ls: LabelStudioClient, title: str, markers: list[str]) -> int:
    project = ls.sdk.projects.create(title=title, label_config=FULL_CONFIG)
    ls.import_tasks(int(project.id), [
        {"data": {"trace_id": f"{title}-{i}", "messages": [{"role": "user", "content": "hi"}],
                  "answer": f"answer {i} of {title} [[case:{marker}]]"}}
        for i, marker in enumerate(markers)])
    return int(project.id)


def _predictions_by_marker(ls: LabelStudioClient, project_id: int) -> dict[str, list[int]]:
    """marker -> the number of predictions of each of its tasks."""
    out: dict[str, list[int]] = {}
    for task in ls.sdk.tasks.list(project=project_id, fields="all", page_size=100):
        marker = task.data["answer"].rsplit("[[case:", 1)[1].rstrip("]")
        out.setdefault(marker, []).append(len(task.predictions or []))
    return out


def _run_fault(ls: LabelStudioClient, llm: FakeLLM, backend: ManagedBackend, fault: str,
               run: int) -> dict[str, Any]:
    """One batch of 8 tasks through Label Studio, 3 of them hitting ``fault``; then the
    provider recovers and Label Studio asks again. Returns what happened."""
    marker = f"{fault}-{run}"
    llm.script(marker, FAULTS[fault])
    markers = ["good", marker, "good", "good", marker, "good", marker, "good"]
    project_id = _project(ls, f"faults {fault} {run} {time.time_ns()}", markers)
    started = time.monotonic()
    preannotate(ls, project_id, backend.url, backend.auth, batch_size=len(markers))
    first_s = time.monotonic() - started
    first = _predictions_by_marker(ls, project_id)
    llm.script(marker, {"content": GOOD})  # the provider is fine again
    started = time.monotonic()
    preannotate(ls, project_id, backend.url, backend.auth, batch_size=len(markers))
    second_s = time.monotonic() - started
    final = _predictions_by_marker(ls, project_id)
    counts = [c for per in final.values() for c in per]
    return {
        "fault": fault, "first_s": first_s, "second_s": second_s,
        "good_first": first.get("good", []), "faulty_first": first.get(marker, []),
        "lost": sum(1 for c in counts if c == 0), "duplicated": sum(1 for c in counts if c > 1),
        "in_time": first_s <= BUDGET + SLACK and second_s <= BUDGET + SLACK,
    }


def test_a_mixed_bad_batch_answers_in_time_with_the_good_tasks(
        ls_client: LabelStudioClient, llm: FakeLLM, faulty_backend: ManagedBackend) -> None:
    """The fast representative of the fault table: one batch with trickling, hanging,
    rate-limited (Retry-After 30 s) and resetting calls among six good ones."""
    for name in ("trickle", "hang", "429_retry_after_30", "reset"):
        llm.script(f"mixed-{name}", FAULTS[name])
    bad = [f"mixed-{n}" for n in ("trickle", "hang", "429_retry_after_30", "reset")]
    markers = ["good", bad[0], "good", bad[1], "good", "good", bad[2], "good", bad[3], "good"]
    project_id = _project(ls_client, f"faults mixed {time.time_ns()}", markers)
    started = time.monotonic()
    preannotate(ls_client, project_id, faulty_backend.url, faulty_backend.auth, batch_size=10)
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET + SLACK, elapsed  # before: 244-314 s, Label Studio gave up
    first = _predictions_by_marker(ls_client, project_id)
    assert first["good"] == [1] * 6
    assert all(first[m] == [0] for m in bad)

    for marker in bad:
        llm.script(marker, {"content": GOOD})
    preannotate(ls_client, project_id, faulty_backend.url, faulty_backend.auth, batch_size=10)
    final = _predictions_by_marker(ls_client, project_id)
    assert sorted(c for per in final.values() for c in per) == [1] * 10


def test_health_answers_within_a_second_while_every_predict_hangs(
        llm: FakeLLM, faulty_backend: ManagedBackend) -> None:
    """Nine /predict in flight, each on a hanging provider (more than gunicorn has
    threads): /health keeps answering within Label Studio's 1 s (before: 120 of 278 probes
    missed it)."""
    llm.script("hang-health", FAULTS["hang"])
    url, auth = faulty_backend.url, faulty_backend.auth
    body = {"label_config": FULL_CONFIG, "tasks": [
        {"id": i, "data": {"messages": [], "answer": f"hang {i} [[case:hang-health]]"}}
        for i in range(4)]}
    answered: list[float] = []

    def ask(_: int) -> int:
        started = time.monotonic()
        response = requests.post(f"{url}/predict", json=body, auth=auth, timeout=100)
        answered.append(time.monotonic() - started)
        return response.status_code

    probes: list[float] = []
    with ThreadPoolExecutor(max_workers=9) as pool:
        futures = [pool.submit(ask, i) for i in range(9)]
        time.sleep(0.5)
        while not all(f.done() for f in futures):
            started = time.monotonic()
            status = requests.get(f"{url}/health", auth=auth, timeout=5).status_code
            probes.append(time.monotonic() - started)
            assert status == 200
            time.sleep(0.1)
        assert [f.result() for f in futures] == [200] * 9
    assert len(probes) >= 10
    assert max(probes) < 1.0, sorted(probes)[-5:]
    assert max(answered) < BUDGET + 1.5, answered
    metrics = requests.get(f"{url}/metrics", auth=auth, timeout=5).json()
    assert metrics.get("predicts_busy", 0) >= 3  # 9 requests, 6 slots


def test_request_bodies_against_gunicorn(faulty_backend: ManagedBackend) -> None:
    url, auth = faulty_backend.url, faulty_backend.auth

    def chunks(size: int) -> Iterator[bytes]:
        yield b'{"tasks": [], "pad": "'
        for _ in range(size // 65536):
            yield b"x" * 65536
        yield b'"}'

    small = requests.post(f"{url}/predict", data=chunks(65536), auth=auth, timeout=30,
                          headers={"Content-Type": "application/json"})
    assert small.status_code == 200 and small.json()["results"] == []
    # over the 50 MB limit, sent chunked (no Content-Length): refused while it arrives
    big = requests.post(f"{url}/predict", data=chunks(51 * 1024 * 1024), auth=auth,
                        timeout=60, headers={"Content-Type": "application/json"})
    assert big.status_code == 413, big.text[:200]
    bad = requests.post(f"{url}/predict", data=b'{"tasks": [', auth=auth, timeout=5,
                        headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    deep = requests.post(f"{url}/predict", data=b"[" * 100000 + b"]" * 100000, auth=auth,
                         timeout=10, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "deeper" in deep.json()["error"]


def test_the_managed_backend_is_closed_by_default(faulty_backend: ManagedBackend) -> None:
    """No credentials configured: the managed backend made a login (owner-only file)
    and refuses requests without it."""
    assert faulty_backend.auth is not None
    assert saved_credentials(faulty_backend.run_dir) == faulty_backend.auth
    mode = (faulty_backend.run_dir / "credentials.json").stat().st_mode & 0o777
    assert mode == 0o600
    assert requests.post(f"{faulty_backend.url}/predict", json={"tasks": []},
                         timeout=5).status_code == 401
    assert requests.get(f"{faulty_backend.url}/metrics", timeout=5).status_code == 401


def _gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "ls_llmtrace.judging.backend:create_app()"], stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True)


def test_gunicorn_refuses_to_serve_without_credentials_unless_told_open(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LS_LLMTRACE_")}
    env["LS_LLMTRACE_HOME"] = str(tmp_path / "home")
    refused = _gunicorn(env, free_port(), tmp_path / "refused.log")
    assert refused.wait(timeout=60) != 0
    assert "has no credentials" in (tmp_path / "refused.log").read_text()

    port = free_port()
    opened = _gunicorn({**env, "LS_LLMTRACE_BACKEND_OPEN": "1"}, port, tmp_path / "open.log")
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
            except requests.RequestException:
                time.sleep(0.2)
        assert status == 200
        assert "runs OPEN" in (tmp_path / "open.log").read_text()
    finally:
        os.killpg(opened.pid, signal.SIGTERM)
        opened.wait(timeout=30)


def test_managed_backend_start_error_names_the_missing_credentials(tmp_path: Path) -> None:
    """An explicit empty login and no open flag: the start fails, saying what to set."""
    managed = ManagedBackend(tmp_path / "run", free_port(), auth=("", ""))
    with pytest.raises(BackendStartError, match="exited"):
        managed.start(timeout=60, env={"LS_LLMTRACE_HOME": str(tmp_path / "home"),
                                       "LS_LLMTRACE_BACKEND_TOKEN": "",
                                       "LS_LLMTRACE_BACKEND_OPEN": ""})
    assert "has no credentials" in managed.log_file.read_text()


@pytest.mark.stress
def test_fault_table(ls_client: LabelStudioClient, llm: FakeLLM,
                     faulty_backend: ManagedBackend, capsys: pytest.CaptureFixture[str]) -> None:
    """Every fault, three runs each, through Label Studio: the table of the report."""
    rows = []
    for fault in FAULTS:
        runs = [_run_fault(ls_client, llm, faulty_backend, fault, run) for run in range(3)]
        rows.append((fault, runs))
    with capsys.disabled():
        print(f"\n{'fault':<22} {'runs':>4} {'lost':>4} {'dup':>4} {'in time':>7} "
              f"{'good 1st':>8} {'max 1st s':>9} {'max 2nd s':>9}")
        for fault, runs in rows:
            good = sum(sum(r["good_first"]) for r in runs)
            print(f"{fault:<22} {len(runs):>4} {sum(r['lost'] for r in runs):>4} "
                  f"{sum(r['duplicated'] for r in runs):>4} "
                  f"{sum(r['in_time'] for r in runs):>4}/{len(runs)} "
                  f"{good:>4}/{5 * len(runs)} {max(r['first_s'] for r in runs):>9.1f} "
                  f"{max(r['second_s'] for r in runs):>9.1f}")
    for _fault, runs in rows:
        for r in runs:
            assert r["lost"] == 0 and r["duplicated"] == 0, r
            assert r["in_time"], r
            assert r["good_first"] == [1] * 5, r
            assert r["faulty_first"] == [0] * 3, r
