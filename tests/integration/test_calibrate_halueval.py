"""Calibration through the real Label Studio loop, on real data (HaluEval general: real
ChatGPT answers with human hallucination labels): import the traces, the human labels as
Label Studio annotations, sync, the learned evaluator (the ML backend, its own gunicorn
process) predicts every task, ``ls-llmtrace calibrate`` chooses its settings on a
stratified split and reports held-out agreement before and after with intervals, and the
backend's next ``/setup`` gives a new model_version: Label Studio re-predicts every task
with the calibrated judge. The first 240 rows run by default; all 4,507 under `make stress`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from tests.integration.test_golden_halueval import _result, _rows, _trace

from ls_llmtrace.cli import main
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.judging.judges.learned import LearnedJudge, LearnedParams, LearnedRegistry
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import free_port
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def learned_backend(ls_client: LabelStudioClient, ls_env: Path) -> Iterator[ManagedBackend]:
    """The learned evaluator's backend on the test's store (the one the CLI uses)."""
    managed = ManagedBackend(ls_env / "backend", free_port())
    managed.start(env={
        "LS_LLMTRACE_HOME": str(ls_env / "backend"),
        "LS_LLMTRACE_DB": f"sqlite:///{ls_env / 'store.sqlite'}",
        "LS_LLMTRACE_JUDGE": "learned", "LS_LLMTRACE_LEARNED_MIN_LABELS": "20",
        "LS_LLMTRACE_LS_URL": ls_client.url, "LS_LLMTRACE_LS_TOKEN": ls_client.token,
        "LS_LLMTRACE_LLM_BASE_URL": "", "LS_LLMTRACE_SCHEMA_DIR": str(REPO / "label_configs"),
        "LS_LLMTRACE_BACKEND_USER": "", "LS_LLMTRACE_BACKEND_PASSWORD": "",
        "LS_LLMTRACE_WEBHOOK_SECRET": "",
    })
    yield managed
    managed.stop()


def _versions(ls_client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in
            ls_client.sdk.tasks.list(project=project_id, fields="all", page_size=1000)]


def run_calibration_loop(ls_client: LabelStudioClient, backend: ManagedBackend, tmp: Path,
                         limit: int | None, queue: str) -> dict[str, Any]:
    schema = load_schema(REPO / "label_configs" / "default.v2.yaml")
    rows = _rows(limit)
    traces = {_trace(r).trace_id: (r, _trace(r)) for r in rows}
    with Store() as store:
        project_id = import_traces(ls_client, store, [t for _, t in traces.values()],
                                   queue=queue, schema=schema).project_id
    assert project_id is not None
    tasks = {trace_id: task_id for task_id, trace_id in ls_client.task_trace_ids(project_id)}
    human = {tid: r["hallucination"] == "yes" for tid, (r, _) in traces.items()}
    jobs = [(tasks[tid], _result(human[tid], [])) for tid in traces]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda job: ls_client.sdk.annotations.create(id=job[0], result=job[1]),
                      jobs))
    runner = CliRunner()
    synced = runner.invoke(main, ["sync", "--json"])
    assert synced.exit_code == 0, synced.output

    # the learned evaluator as it is: trained on every label, predicts every task
    first = preannotate(ls_client, project_id, backend.url, backend.auth, batch_size=500)
    assert first.model_version.startswith("llmtrace-learned-v")
    assert ls_client.prediction_count(project_id) == len(rows)

    out = tmp / "calibration.json"
    done = runner.invoke(main, ["calibrate", "--queue", queue, "--judge", "learned",
                                "--min-labels", "100", "--bootstrap", "1000", "--out",
                                str(out), "--json"])
    assert done.exit_code == 0, done.output
    body = json.loads(out.read_text(encoding="utf-8"))
    assert body["labels"]["total"] == len(rows)
    assert body["labels"]["failing"] == sum(human.values())
    assert body["project_id"] == project_id and body["saved"] is True
    for side in ("before", "after"):
        kappa = body[side]["test"]["kappa"]
        assert kappa["low"] <= kappa["value"] <= kappa["high"]
        assert body[side]["test"]["n"] == body["split"]["test"]["n"]
    assert body["changed"] is True, body["candidates"]

    # the backend takes the calibration at its next /setup: a new model_version, so
    # Label Studio asks for every task again (the first predictions stay)
    second = preannotate(ls_client, project_id, backend.url, backend.auth, batch_size=500)
    assert second.model_version != first.model_version
    assert second.model_version.startswith("llmtrace-learned-v")
    assert second.pending == len(rows)
    assert ls_client.prediction_count(project_id) == 2 * len(rows)
    metrics = requests.get(f"{backend.url}/metrics", auth=backend.auth, timeout=10).json()
    assert metrics["learned_models"]["default@v2"] is not None

    # ... and those predictions are the calibrated judge's: the chosen settings, refitted
    # on every label, give the same verdict on every task here
    chosen = LearnedParams.from_dict(body["after"]["params"])
    with Store() as store:
        local = LearnedRegistry(tmp / "local-learned", 20).train(store, schema.id,
                                                                 schema.version)
    assert local is not None and local.model.params == chosen
    judge = LearnedJudge(local, "pass")
    listed = _versions(ls_client, project_id)
    verdicts = judge.judge_many([t["data"] for t in listed])
    for task, verdict in zip(listed, verdicts, strict=True):
        [prediction] = [p for p in task["predictions"]
                        if p["model_version"] == second.model_version]
        label = next(r for r in prediction["result"] if r["from_name"] == "verdict")
        assert label["value"]["choices"] == [verdict.label], task["id"]
    before, after = body["before"]["test"], body["after"]["test"]
    return {"rows": len(rows), "failing": sum(human.values()),
            "split": {k: body["split"][k]["n"] for k in ("train", "dev", "test")},
            "chosen": body["after"]["describe"], "threshold": body["after"]["threshold"],
            "before_kappa": before["kappa"], "after_kappa": after["kappa"],
            "before_accuracy": before["accuracy"]["value"],
            "after_accuracy": after["accuracy"]["value"],
            "more_labels": body["more_labels"]["more_labels"],
            "versions": [first.model_version, second.model_version]}


def test_calibrate_halueval_first_240(ls_client: LabelStudioClient, ls_env: Path,
                                      learned_backend: ManagedBackend) -> None:
    figures = run_calibration_loop(ls_client, learned_backend, ls_env, 240,
                                   "halueval-calibrate")
    assert figures["split"] == {"train": 144, "dev": 48, "test": 48}
    print(figures)


@pytest.mark.stress
def test_calibrate_halueval_all(ls_client: LabelStudioClient, ls_env: Path,
                                learned_backend: ManagedBackend) -> None:
    figures = run_calibration_loop(ls_client, learned_backend, ls_env, None,
                                   "halueval-calibrate-all")
    assert figures["rows"] == 4507 and figures["failing"] == 815
    print(figures)
