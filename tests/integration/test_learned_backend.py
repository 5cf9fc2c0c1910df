"""The offline default against the real Label Studio: the learned evaluator answers with
the rule judge until reviewers have labelled enough, then Label Studio's own webhooks make
the backend sync the new annotations and retrain, and its model_version moves on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ls_llmtrace.ingest.importers import read_any
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import free_port
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "sample_traces.jsonl"


@pytest.fixture(scope="module")
def learned_backend(ls_client: LabelStudioClient, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[ManagedBackend, Path]]:
    run_dir = tmp_path_factory.mktemp("learned-backend")
    db = f"sqlite:///{run_dir / 'store.sqlite'}"
    managed = ManagedBackend(run_dir, free_port())
    managed.start(env={
        "LS_LLMTRACE_HOME": str(run_dir), "LS_LLMTRACE_DB": db, "LS_LLMTRACE_JUDGE": "learned",
        "LS_LLMTRACE_LEARNED_MIN_LABELS": "10", "LS_LLMTRACE_LS_URL": ls_client.url,
        "LS_LLMTRACE_LS_TOKEN": ls_client.token, "LS_LLMTRACE_LLM_BASE_URL": "",
        "LS_LLMTRACE_SCHEMA_DIR": str(REPO / "label_configs"),
        "LS_LLMTRACE_BACKEND_USER": "", "LS_LLMTRACE_BACKEND_PASSWORD": "",
        "LS_LLMTRACE_BACKEND_TOKEN": "", "LS_LLMTRACE_WEBHOOK_SECRET": "",
    })
    yield managed, run_dir
    managed.stop()


def test_rules_until_enough_labels_then_learned_after_webhooks(
        ls_client: LabelStudioClient, learned_backend: tuple[ManagedBackend, Path]) -> None:
    backend, run_dir = learned_backend
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    with Store(f"sqlite:///{run_dir / 'store.sqlite'}") as store:
        project_id = import_traces(ls_client, store, read_any(SAMPLES), queue="learned",
                                   schema=schema).project_id
    preannotate(ls_client, project_id, backend.url, backend.auth)
    assert ls_client.prediction_count(project_id) == 22
    tasks = [t.model_dump(mode="json") for t in
             ls_client.sdk.tasks.list(project=project_id, fields="all", page_size=100)]
    assert {t["predictions"][0]["model_version"] for t in tasks} == {
        "llmtrace-rules-v1@default@v1"}

    # reviewers label 12 traces; each save sends a webhook, the backend syncs and retrains
    halueval = sorted((t for t in tasks if t["data"]["trace_id"].startswith("halueval")),
                      key=lambda t: t["id"])[:12]
    for i, task in enumerate(halueval):
        label = "fail" if i % 3 == 0 else "pass"
        ls_client.sdk.annotations.create(id=task["id"], result=[
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": [label]}}])
    deadline = time.monotonic() + 90
    models: dict[str, int | None] = {}
    while time.monotonic() < deadline:
        metrics = requests.get(f"{backend.url}/metrics", auth=backend.auth, timeout=5).json()
        models = metrics.get("learned_models", {})
        if models.get("default@v1") and metrics.get("learned_syncs", 0) >= 1:
            with Store(f"sqlite:///{run_dir / 'store.sqlite'}") as store:
                if len(store.records(source="reviewer")) == 12:
                    break
        time.sleep(0.5)
    assert models.get("default@v1") is not None, models
    assert metrics.get("webhook_annotation_created", 0) >= 1

    # the next "retrieve predictions" comes from the learned judge: a new model_version,
    # so Label Studio asks for every task again and keeps the rule judge's predictions
    version = requests.post(f"{backend.url}/setup", json={
        "schema": ls_client.project(project_id).label_config}, auth=backend.auth,
        timeout=10).json()[
        "model_version"]
    assert version.startswith("llmtrace-learned-v") and version.endswith("@default@v1")
    preannotate(ls_client, project_id, backend.url, backend.auth)
    assert ls_client.prediction_count(project_id) == 44
    tasks = [t.model_dump(mode="json") for t in
             ls_client.sdk.tasks.list(project=project_id, fields="all", page_size=100)]
    for task in tasks:
        learned = [p for p in task["predictions"] if p["model_version"] == version]
        assert len(learned) == 1, task["id"]
        names = {r["from_name"] for r in learned[0]["result"]}
        assert names == {"verdict", "score", "judge_explanation"}
