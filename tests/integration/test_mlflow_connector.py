"""The MLflow round trip against a real local MLflow tracking server and a real Label Studio.

A real producer (MLflow's own ``mlflow.openai.autolog()`` with the OpenAI SDK, in MLflow's
virtualenv) sends chat calls against the local fake provider to MLflow; ``ls-llmtrace pull
mlflow`` brings the traces into a queue; reviewers annotate through Label Studio's API; the
sync stores the records; ``ls-llmtrace push mlflow`` writes them back, and MLflow's own API
returns them as HUMAN assessments (feedback, and the corrected output as an expectation)
on the right traces. A second pull and a second push change nothing; a push that created
assessments but lost its memory of them (a crash) updates them instead of duplicating.
The same records then go out as ``gen_ai.evaluation.result`` events to a test OTLP
receiver, linked to the OpenTelemetry ids of the MLflow traces.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from tests.support.fake_llm_server import FakeLLM
from tests.support.otlp_log_receiver import OtlpLogReceiver
from tests.support.tool_servers import MLFLOW_VENV, ToolServer, start_mlflow, tool_python

from ls_llmtrace.cli import main
from ls_llmtrace.connectors.common import root_span_id
from ls_llmtrace.connectors.mlflow import SYSTEM, MlflowClient
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "support" / "instrumented_app.py"
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?",
             "Name a prime number above 10."]
EXPERIMENT = "support-bot"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolServer]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


def _send(server: ToolServer, llm: FakeLLM, tmp_path: Path) -> list[dict[str, Any]]:
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(QUESTIONS))
    truth = tmp_path / "truth.json"
    subprocess.run([tool_python(MLFLOW_VENV), str(APP), "--instrumentation", "mlflow",
                    "--endpoint", server.url, "--llm", llm.url, "--project", EXPERIMENT,
                    "--questions", str(questions), "--truth", str(truth)],
                   check=True, timeout=300)
    return list(json.loads(truth.read_text()))


def _wait_for_spans(url: str, trace_ids: list[str], timeout: float = 120.0) -> None:
    """Wait until MLflow serves each trace with its spans: the client logs a trace's info
    and its spans in separate requests, and a loaded machine can see the first alone."""
    deadline = time.monotonic() + timeout
    waiting = list(trace_ids)
    while waiting and time.monotonic() < deadline:
        answer = requests.get(f"{url}/api/3.0/mlflow/traces/batchGet", timeout=30,
                              params={"trace_ids": waiting[0]})
        if answer.status_code == 200 and all(t.get("spans") for t in
                                             answer.json().get("traces") or [{}]):
            waiting.pop(0)
        else:
            time.sleep(1)
    assert not waiting, f"MLflow never served the spans of {waiting}"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _ours(server: ToolServer, trace_id: str) -> list[dict[str, Any]]:
    """The assessments on a trace that a push made, read from MLflow's own API."""
    answer = requests.get(f"{server.url}/api/3.0/mlflow/traces/{trace_id}", timeout=30)
    answer.raise_for_status()
    found = answer.json()["trace"]["trace_info"].get("assessments") or []
    return sorted((a for a in found if "ls_llmtrace.item" in (a.get("metadata") or {})),
                  key=lambda a: a["assessment_name"])


def test_mlflow_round_trip(mlflow_server: ToolServer, ls_client: LabelStudioClient,
                           ls_env: Path) -> None:
    tmp_path = ls_env
    with FakeLLM() as llm:
        llm.set_default("Paris is the capital of France.")
        truth = _send(mlflow_server, llm, tmp_path)
    assert len(truth) == 3 and all(t["trace_id"].startswith("tr-") for t in truth)
    url = mlflow_server.url
    _wait_for_spans(url, [t["trace_id"] for t in truth])

    out = _cli("pull", "mlflow", "--experiment", EXPERIMENT, "--queue", "mlflow-review",
               "--url", url)
    assert f"mlflow {EXPERIMENT}: 3 traces read; read 3, imported 3" in out
    assert "cursor: " in out
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    queue = store.queue("mlflow-review")
    assert queue is not None
    project_id = int(queue["project_id"])
    tasks = {t.data["trace_id"]: t for t in ls_client.sdk.tasks.list(
        project=project_id, fields="all", page_size=100)}
    assert set(tasks) == {t["trace_id"] for t in truth}
    for expected in truth:  # the pulled trace is what the app sent and got back
        stored = store.trace(expected["trace_id"])
        assert stored is not None and stored.source == SYSTEM
        assert stored.system_prompt == expected["system"]
        assert [(m.role, m.content) for m in stored.messages] == [("user", expected["question"])]
        assert stored.output == expected["answer"]
        assert stored.metadata.model == "gpt-4o-mini"
        assert stored.metadata.extra["otel_trace_id"] == expected["trace_id"][3:]

    # a second pull (from the saved cursor, minus the overlap) creates nothing
    again = _cli("pull", "mlflow", "--experiment", EXPERIMENT, "--queue", "mlflow-review",
                 "--url", url)
    assert "3 traces read; read 3, imported 0, skipped as duplicates 3" in again
    assert len(ls_client.sdk.tasks.list(project=project_id, page_size=100).items) == 3
    # --since and --filter go to MLflow's own search (ANDed); a filter nothing matches
    matched = _cli("pull", "mlflow", "--experiment", EXPERIMENT, "--queue", "mlflow-review",
                   "--url", url, "--since", "2000-01-01", "--filter", "trace.status = 'OK'")
    assert "3 traces read; read 3, imported 0, skipped as duplicates 3" in matched
    none = _cli("pull", "mlflow", "--experiment", EXPERIMENT, "--queue", "mlflow-review",
                "--url", url, "--filter", "tags.env = 'prod'")
    assert "0 traces read" in none
    unknown = CliRunner().invoke(main, ["pull", "mlflow", "--experiment", "no-such",
                                        "--queue", "mlflow-review", "--url", url])
    assert unknown.exit_code == 7 and "has no experiment 'no-such'" in unknown.output

    # two reviews through Label Studio's API, then the sync
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    fail_id, pass_id = truth[0]["trace_id"], truth[1]["trace_id"]
    ls_client.sdk.annotations.create(id=tasks[fail_id].id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "score", "to_name": "answer", "type": "number", "value": {"number": 0.2}},
        {"from_name": "explanation", "to_name": "answer", "type": "textarea",
         "value": {"text": ["Answers a different question."]}},
        {"from_name": "corrected_output", "to_name": "answer", "type": "textarea",
         "value": {"text": ["Paris."]}},
    ])
    ls_client.sdk.annotations.create(id=tasks[pass_id].id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["pass"]}},
    ])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])

    first = json.loads(_cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url,
                            "--json"))
    assert (first["sent"], first["unchanged"]) == (3, 0)  # 2 feedbacks, 1 expectation
    failed = _ours(mlflow_server, fail_id)
    assert [a["assessment_name"] for a in failed] == [schema.id, "expected_response"]
    feedback, expectation = failed
    assert feedback["source"]["source_type"] == "HUMAN"
    assert feedback["source"]["source_id"] and "@" in feedback["source"]["source_id"]
    assert feedback["feedback"]["value"] == "fail"
    assert feedback["rationale"] == "Answers a different question."
    assert json.loads(feedback["metadata"]["score"]) == 0.2
    assert feedback["metadata"]["label_studio_task"] == str(tasks[fail_id].id)
    assert expectation["expectation"]["value"] == "Paris."
    assert expectation["source"] == feedback["source"]
    [passed] = _ours(mlflow_server, pass_id)
    assert passed["feedback"]["value"] == "pass" and passed["source"]["source_type"] == "HUMAN"
    assert _ours(mlflow_server, truth[2]["trace_id"]) == []
    ids = sorted(a["assessment_id"] for t in (fail_id, pass_id)
                 for a in _ours(mlflow_server, t))

    # a second push sends nothing and MLflow holds the same assessments
    second = _cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url)
    assert "mlflow: 0 sent, 3 unchanged" in second
    assert sorted(a["assessment_id"] for t in (fail_id, pass_id)
                  for a in _ours(mlflow_server, t)) == ids

    # a changed review is updated in place (same MLflow assessment, new value)
    [annotation] = ls_client.sdk.tasks.get(id=tasks[pass_id].id).annotations
    ls_client.sdk.annotations.update(id=annotation["id"], result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
    ])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])
    third = _cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url)
    assert "mlflow: 1 sent, 2 unchanged" in third
    [updated] = _ours(mlflow_server, pass_id)
    assert updated["assessment_id"] == passed["assessment_id"]
    assert updated["feedback"]["value"] == "fail"

    # a push that created its assessments and then lost what it remembered (a crash
    # between MLflow's answer and the store's commit) finds them again on the traces
    experiment_id = MlflowClient(url).experiment_id(EXPERIMENT)
    for key in list(store.pushed_items(SYSTEM, experiment_id)):
        store.forget_push(SYSTEM, experiment_id, key)
    fourth = json.loads(_cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url,
                             "--json"))
    assert fourth["sent"] == 3
    assert sorted(a["assessment_id"] for t in (fail_id, pass_id)
                  for a in _ours(mlflow_server, t)) == ids

    # the same reviewer records out as OpenTelemetry evaluation events, on the MLflow
    # traces' OpenTelemetry ids (a test receiver decodes them with opentelemetry-proto)
    with OtlpLogReceiver() as receiver:
        exported = json.loads(_cli("push", "otel", "--endpoint", receiver.url, "--json"))
        assert exported["sent"] == 2
        events = {bytes(r.trace_id).hex(): r for r in receiver.records()}
        assert set(events) == {fail_id[3:], pass_id[3:]}
        event = events[fail_id[3:]]
        assert event.event_name == "gen_ai.evaluation.result"
        attrs = {kv.key: kv.value for kv in event.attributes}
        assert attrs["gen_ai.evaluation.name"].string_value == schema.id
        assert attrs["gen_ai.evaluation.score.label"].string_value == "fail"
        assert attrs["gen_ai.evaluation.score.value"].double_value == 0.2
        assert attrs["gen_ai.evaluation.explanation"].string_value == \
            "Answers a different question."
        stored = store.trace(fail_id)
        assert stored is not None
        assert bytes(event.span_id).hex() == root_span_id(stored)
        again_otel = _cli("push", "otel", "--endpoint", receiver.url)
        assert "otel: 0 sent, 2 unchanged" in again_otel
        assert len(receiver.records()) == 2

    # a trace deleted in MLflow after the pull: its record is left out, the rest goes on
    gone = truth[2]["trace_id"]
    ls_client.sdk.annotations.create(id=tasks[gone].id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["pass"]}}])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])
    requests.post(f"{url}/api/2.0/mlflow/traces/delete-traces", timeout=30, json={
        "experiment_id": experiment_id, "request_ids": [gone]}).raise_for_status()
    fifth = json.loads(_cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url,
                            "--json"))
    assert (fifth["sent"], fifth["unchanged"]) == (0, 3)
    assert fifth["skipped"] == {"traces no longer in MLflow": 1}

    # a corrected output taken back: its expectation is deleted, the feedback stays
    [reviewed] = ls_client.sdk.tasks.get(id=tasks[fail_id].id).annotations
    ls_client.sdk.annotations.update(id=reviewed["id"], result=[
        r for r in reviewed["result"] if r["from_name"] != "corrected_output"])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])
    sixth = json.loads(_cli("push", "mlflow", "--experiment", EXPERIMENT, "--url", url,
                            "--json"))
    assert (sixth["sent"], sixth["unchanged"]) == (1, 2)
    assert [a["assessment_name"] for a in _ours(mlflow_server, fail_id)] == [schema.id]
    store.close()
