"""The whole loop against a real Label Studio: push, import, predict, annotate, sync, golden."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from ls_llmtrace.evals.golden import golden_cases
from ls_llmtrace.ingest.importers import read_any, read_native
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.records.migrate import push_schema_version
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import AnnotationSchema, load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "sample_traces.jsonl"
EXPECTED_MODEL_VERSION = "llmtrace-rules-v1@default@v1"


def _schema(queue_suffix: str) -> AnnotationSchema:
    return load_schema(REPO / "label_configs" / "default.v1.yaml")


def _tasks(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in
            client.sdk.tasks.list(project=project_id, fields="all", page_size=100)]


def _wait_predictions(client: LabelStudioClient, project_id: int, expected: int) -> int:
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        count = client.project(project_id).total_predictions_number or 0
        if count >= expected:
            return int(count)
        time.sleep(0.5)
    return int(count)


def test_whole_loop(ls_client: LabelStudioClient, backend: ManagedBackend, tmp_path: Path) -> None:
    schema = _schema("e2e")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    traces = [t for t in read_native(SAMPLES) if not isinstance(t, list)]
    assert len(traces) == 22

    # push schema -> project with the generated config
    pushed = push_schema_version(ls_client, store, schema, "e2e", {})
    project_id = pushed.project_id
    assert pushed.created
    project = ls_client.project(project_id)
    generated = (REPO / "label_configs" / "default.v1.xml").read_text()
    assert generated.strip() == project.label_config.strip()
    again_pushed = push_schema_version(ls_client, store, schema, "e2e", {})
    assert (again_pushed.project_id, again_pushed.created) == (project_id, False)

    # import, then import again: no second task for any trace
    first = import_traces(ls_client, store, read_any(SAMPLES), queue="e2e", batch_size=8)
    assert first.project_id == project_id
    assert (first.summary.imported, first.summary.duplicates) == (22, 0)
    again = import_traces(ls_client, store, read_any(SAMPLES), queue="e2e")
    assert (again.summary.imported, again.summary.duplicates) == (0, 22)
    tasks = _tasks(ls_client, project_id)
    assert sorted(t["data"]["trace_id"] for t in tasks) == sorted(t.trace_id for t in traces)
    assert all(t["meta"]["trace_id"] == t["data"]["trace_id"] for t in tasks)
    assert all(t["meta"]["schema_version"] == 1 for t in tasks)

    # predictions through Label Studio's own Data Manager action
    state = preannotate(ls_client, project_id, backend.url, backend.auth)
    assert (state.pending, state.created) == (22, 22)
    assert _wait_predictions(ls_client, project_id, 22) == 22
    tasks = _tasks(ls_client, project_id)
    for task in tasks:
        assert len(task["predictions"]) == 1, task["id"]
        prediction = task["predictions"][0]
        assert prediction["model_version"] == EXPECTED_MODEL_VERSION
        names = {r["from_name"]: r for r in prediction["result"]}
        assert set(names) == {"verdict", "score", "judge_explanation"}
        assert names["verdict"]["value"]["choices"][0] in ("pass", "fail")
        assert 0.0 <= names["score"]["value"]["number"] <= 1.0
    metrics_before = requests.get(f"{backend.url}/metrics", auth=backend.auth, timeout=5).json()

    # asking again predicts nothing new: Label Studio skips this judge's model_version
    assert preannotate(ls_client, project_id, backend.url, backend.auth).pending == 0
    time.sleep(1)
    assert ls_client.project(project_id).total_predictions_number == 22
    metrics_after = requests.get(f"{backend.url}/metrics", auth=backend.auth, timeout=5).json()
    assert metrics_after.get("predictions") == metrics_before.get("predictions")

    # reviewers annotate: passes, and fails with explanations and corrected outputs
    by_trace = {t["data"]["trace_id"]: t for t in tasks}
    fails = {
        "halueval-general-2": ("Repeats the hear/here pair as items 6 and 10.", 0.3,
                               "1. allowed and aloud\n2. weather and whether"),
        "otel-genai-weather-chatcmpl-CQF10eCkoFphJZJQkzzN6EkTD0AVF":
            ("Says 57F but omits the rain warning the user asked about.", 0.45,
             "It is rainy and 57°F in Paris; take an umbrella."),
    }
    passes = {"halueval-general-6": 0.9, "langfuse-25f4bdeebaab60e6e1bee7e8469554bc": 1.0}
    for trace_id, (why, score, fixed) in fails.items():
        ls_client.sdk.annotations.create(id=by_trace[trace_id]["id"], lead_time=12.5, result=[
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": ["fail"]}},
            {"from_name": "score", "to_name": "answer", "type": "number",
             "value": {"number": score}},
            {"from_name": "explanation", "to_name": "answer", "type": "textarea",
             "value": {"text": [why]}},
            {"from_name": "corrected_output", "to_name": "answer", "type": "textarea",
             "value": {"text": [fixed]}},
        ])
    for trace_id, score in passes.items():
        ls_client.sdk.annotations.create(id=by_trace[trace_id]["id"], result=[
            {"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": ["pass"]}},
            {"from_name": "score", "to_name": "answer", "type": "number",
             "value": {"number": score}},
        ])

    # sync -> exactly these records
    schemas = {(schema.id, schema.version): schema}
    [summary] = sync_all(ls_client, store, schemas, project_ids=[project_id])
    assert summary.records_written == 4 and summary.rejected == 0
    records = {r.trace_id: r for r in store.records()}
    assert set(records) == set(fails) | set(passes)
    admin = ls_client.sdk.users.whoami().email
    for trace_id, (why, score, fixed) in fails.items():
        r = records[trace_id]
        assert (r.label, r.score, r.explanation, r.corrected_output) == ("fail", score, why, fixed)
        assert r.author == admin and r.source.value == "reviewer"
        assert r.schema_id == "default" and r.schema_version == 1
        assert r.ls_project_id == project_id and r.ls_task_id == by_trace[trace_id]["id"]
        assert r.lead_time_s == 12.5
    for trace_id, score in passes.items():
        r = records[trace_id]
        assert (r.label, r.score, r.explanation, r.corrected_output) == ("pass", score, None, None)

    # a second sync adds nothing
    [again_summary] = sync_all(ls_client, store, schemas, project_ids=[project_id])
    assert again_summary.records_written == 0 and again_summary.records_deleted == 0
    assert len(store.records()) == 4

    # the golden set holds exactly the failures, with their corrected outputs
    cases = golden_cases(store, schema)
    assert {c["trace_id"]: c["corrected_output"] for c in cases} == {
        k: v[2] for k, v in fails.items()}
    weather = next(c for c in cases if c["trace_id"].startswith("otel-genai"))
    assert weather["bad_output"].startswith("The weather in Paris")
    assert any(m.get("tool_calls") for m in weather["input"]["messages"])
    json.dumps(cases)  # serializable as JSONL
    store.close()
