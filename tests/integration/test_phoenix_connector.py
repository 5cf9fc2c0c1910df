"""The Phoenix round trip against a real local Arize Phoenix and a real Label Studio.

A real instrumentation (openinference-instrumentation-openai, in Phoenix's virtualenv)
sends OpenAI calls against the local fake provider to Phoenix; ``pull phoenix`` brings
the traces into a queue; reviewers annotate through Label Studio's API; the sync stores
the records; ``push phoenix`` writes them back, and Phoenix's own API returns them as
HUMAN annotations on the right spans. A second pull and a second push change nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_llm_server import FakeLLM
from tests.support.tool_servers import PHOENIX_VENV, ToolServer, start_phoenix, tool_python

from ls_llmtrace.connectors.phoenix import PhoenixClient, PhoenixPull, push
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "support" / "instrumented_app.py"
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?",
             "Name a prime number above 10."]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolServer]:
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    yield server
    server.stop()


def _send(phoenix: ToolServer, llm: FakeLLM, project: str, tmp_path: Path) -> list[dict]:
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(QUESTIONS))
    truth = tmp_path / "truth.json"
    subprocess.run([tool_python(PHOENIX_VENV), str(APP), "--instrumentation", "openinference",
                    "--endpoint", phoenix.url, "--llm", llm.url, "--project", project,
                    "--questions", str(questions), "--truth", str(truth)],
                   check=True, timeout=120)
    return list(json.loads(truth.read_text()))


def test_phoenix_round_trip(phoenix: ToolServer, ls_client: LabelStudioClient,
                            tmp_path: Path) -> None:
    project = "support-bot"
    with FakeLLM() as llm:
        llm.set_default("Paris is the capital of France.")
        truth = _send(phoenix, llm, project, tmp_path)
    assert len(truth) == 3
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    schema = load_schema(REPO / "label_configs" / "default.v1.yaml")
    client = PhoenixClient(phoenix.url)

    pull = PhoenixPull(client, store, project)
    result = import_traces(ls_client, store, pull.traces(), queue="phoenix-review",
                           schema=schema)
    assert pull.save_cursor(store) is not None
    assert result.summary.imported == 3
    project_id = result.project_id
    tasks = {t.data["trace_id"]: t for t in ls_client.sdk.tasks.list(
        project=project_id, fields="all", page_size=100)}
    assert set(tasks) == {t["trace_id"] for t in truth}
    for expected in truth:  # the pulled trace is what the app sent and got back
        stored = store.trace(expected["trace_id"])
        assert stored is not None and stored.source == "phoenix"
        assert stored.system_prompt == expected["system"]
        assert [(m.role, m.content) for m in stored.messages] == [("user", expected["question"])]
        assert stored.output == expected["answer"]
        assert stored.metadata.model == "gpt-4o-mini"

    # a second pull (from the saved cursor) creates nothing
    again = PhoenixPull(client, store, project)
    second = import_traces(ls_client, store, again.traces(), queue="phoenix-review",
                           schema=schema)
    assert len(again.trace_ids) == 3
    assert second.summary.imported == 0 and second.summary.duplicates == 3

    # two reviews through Label Studio's API, then the sync
    fail_id, pass_id = truth[0]["trace_id"], truth[1]["trace_id"]
    ls_client.sdk.annotations.create(id=tasks[fail_id].id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
        {"from_name": "score", "to_name": "answer", "type": "number", "value": {"number": 0.2}},
        {"from_name": "explanation", "to_name": "answer", "type": "textarea",
         "value": {"text": ["Answers a different question."]}},
    ])
    ls_client.sdk.annotations.create(id=tasks[pass_id].id, result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["pass"]}},
    ])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])

    first = push(client, store, project)
    assert (first.sent, first.unchanged) == (2, 0)
    roots = [t["root_span_id"] for t in truth]
    annotations = [a for a in client.span_annotations(project, roots)
                   if a["identifier"].startswith("ls-llmtrace:")]
    by_span = {a["span_id"]: a for a in annotations}
    assert set(by_span) == {truth[0]["root_span_id"], truth[1]["root_span_id"]}
    failed = by_span[truth[0]["root_span_id"]]
    assert failed["annotator_kind"] == "HUMAN" and failed["name"] == schema.id
    assert failed["result"]["label"] == "fail" and failed["result"]["score"] == 0.2
    assert failed["result"]["explanation"] == "Answers a different question."
    assert failed["metadata"]["reviewer"]
    assert by_span[truth[1]["root_span_id"]]["result"]["label"] == "pass"

    # a second push sends nothing and Phoenix holds the same annotations
    second_push = push(client, store, project)
    assert (second_push.sent, second_push.unchanged) == (0, 2)
    after = [a for a in client.span_annotations(project, roots)
             if a["identifier"].startswith("ls-llmtrace:")]
    assert sorted(a["id"] for a in after) == sorted(a["id"] for a in annotations)

    # a changed review is updated in place (same Phoenix annotation, new label)
    [annotation] = ls_client.sdk.tasks.get(id=tasks[pass_id].id).annotations
    ls_client.sdk.annotations.update(id=annotation["id"], result=[
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail"]}},
    ])
    sync_all(ls_client, store, {(schema.id, schema.version): schema}, project_ids=[project_id])
    third = push(client, store, project)
    assert (third.sent, third.unchanged) == (1, 1)
    updated = [a for a in client.span_annotations(project, roots)
               if a["identifier"].startswith("ls-llmtrace:")]
    assert len(updated) == 2
    assert {a["span_id"]: a["result"]["label"] for a in updated}[
        truth[1]["root_span_id"]] == "fail"


def test_phoenix_unreachable_is_one_line(tmp_path: Path) -> None:
    from ls_llmtrace.errors import ConnectorError

    client = PhoenixClient("http://127.0.0.1:9")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with pytest.raises(ConnectorError, match="could not be reached"):
        list(PhoenixPull(client, store, "p").traces())


def test_phoenix_takes_no_otlp_logs(phoenix: ToolServer) -> None:
    """Phoenix takes OTLP traces only: ``push otel`` to it is refused (its /v1/logs answers
    405), one line, nothing half-sent. Evaluations reach Phoenix through ``push phoenix``."""
    from ls_llmtrace.connectors.otel import Event, OtlpLogSender, export_request
    from ls_llmtrace.errors import ConnectorError

    event = Event("k", bytes(range(16)), bytes(range(8)), 1, {"gen_ai.evaluation.name": "d"},
                  "digest")
    with pytest.raises(ConnectorError, match=r"/v1/logs answered 405"):
        OtlpLogSender(phoenix.url).send(export_request([event]))
