"""The learned evaluator: trained from reviewer records in the store, retrained on
webhooks with its version bumped, rule fallback below the minimum, measured on HaluEval."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.support.halueval import load, measure

from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.judging.backend import WEBHOOK_SECRET_HEADER, create_app
from ls_llmtrace.judging.judges.learned import (
    LearnedJudge,
    LearnedRegistry,
    example_from_task,
    example_from_trace,
    training_set,
)
from ls_llmtrace.models import AnnotationRecord, Message, Source, Trace
from ls_llmtrace.schema.labelconfig import build_label_config
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store


def _label(store: Store, schema: AnnotationSchema, rows, start: int = 0, **extra) -> None:
    store.upsert_traces(t for t, _ in rows)
    with store.transaction() as conn:
        for i, (trace, label) in enumerate(rows, start):
            store.upsert_record(conn, AnnotationRecord(
                record_key=f"ls:1:{i}", trace_id=trace.trace_id, schema_id=schema.id,
                schema_version=schema.version, source=Source.reviewer, label=label,
                **extra))


@pytest.fixture(scope="module")
def halueval():
    return load()


def test_training_set_joins_deciding_labels_to_stored_traces(store, default_schema, halueval):
    rows = halueval[:5]
    _label(store, default_schema, rows)
    with store.transaction() as conn:  # cancelled, other schema, other source: left out
        for key, update in [("x1", {"was_cancelled": True}), ("x2", {"schema_id": "other"}),
                            ("x3", {"source": Source.end_user})]:
            fields = {"record_key": key, "trace_id": rows[0][0].trace_id,
                      "schema_id": default_schema.id, "schema_version": 1,
                      "source": Source.reviewer, "label": "fail", **update}
            store.upsert_record(conn, AnnotationRecord(**fields))
        store.upsert_record(conn, AnnotationRecord(  # a label on a trace the store lacks
            record_key="x4", trace_id="unknown", schema_id="default", schema_version=1,
            source=Source.reviewer, label="fail"))
    examples, labels, ids = training_set(store, "default", 1)
    assert ids == sorted(t.trace_id for t, _ in rows)
    assert dict(zip(ids, labels, strict=True)) == {t.trace_id: lab for t, lab in rows}
    assert examples[0].answer


def test_version_bumps_only_when_labels_change(store, default_schema, halueval, tmp_path):
    registry = LearnedRegistry(tmp_path / "learned", min_labels=20)
    _label(store, default_schema, halueval[:19])
    assert registry.train(store, "default", 1) is None  # below the minimum
    _label(store, default_schema, halueval[:40])
    first = registry.train(store, "default", 1)
    assert first is not None and first.version == 1 and first.label_count == 40
    assert registry.train(store, "default", 1) is first  # same labels: same model
    _label(store, default_schema, halueval[40:60], start=40)
    second = registry.train(store, "default", 1)
    assert second is not None and second.version == 2 and second.label_count == 60
    # a restarted backend on the same labels keeps the version
    again = LearnedRegistry(tmp_path / "learned", min_labels=20).train(store, "default", 1)
    assert again is not None and again.version == 2


def test_backend_falls_back_to_rules_then_retrains_on_webhook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_schema, halueval):
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("LS_LLMTRACE_WEBHOOK_SECRET", "hook")
    for name in ("LS_LLMTRACE_LLM_BASE_URL", "LS_LLMTRACE_JUDGE", "LS_LLMTRACE_LS_TOKEN",
                 "LS_LLMTRACE_LEARNED_MIN_LABELS"):
        monkeypatch.delenv(name, raising=False)
    config = build_label_config(default_schema)
    client = create_app().test_client()
    rows = halueval[:30]
    tasks = [{"id": i, "data": trace_to_task(t, default_schema)["data"]}
             for i, (t, _) in enumerate(halueval[100:104])]

    # no labels yet: the rule judge answers (the demo's first run)
    assert client.post("/setup", json={"schema": config}).get_json()["model_version"] == \
        "llmtrace-rules-v1@default@v1"
    body = client.post("/predict", json={"tasks": tasks, "label_config": config}).get_json()
    assert all(r and r["model_version"] == "llmtrace-rules-v1@default@v1"
               for r in body["results"])

    # labels arrive (synced into the store), and the webhook says so
    with Store() as store:
        _label(store, default_schema, rows)

    def webhook(action: str) -> None:
        response = client.post("/webhook", json={"action": action, "project": {"id": 1}},
                               headers={WEBHOOK_SECRET_HEADER: "hook"})
        assert response.status_code == 200
        assert response.get_json()["retrain"] == "scheduled"

    def retrains() -> int:
        return int(client.get("/metrics").get_json().get("learned_retrains", 0))

    webhook("ANNOTATION_CREATED")
    deadline = time.monotonic() + 30
    while retrains() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/metrics").get_json()["learned_models"] == {"default@v1": 1}
    version = client.post("/setup", json={"schema": config}).get_json()["model_version"]
    assert version == "llmtrace-learned-v1@default@v1"
    body = client.post("/predict", json={"tasks": tasks, "label_config": config}).get_json()
    for result in body["results"]:
        assert result["model_version"] == version
        names = {r["from_name"]: r["value"] for r in result["result"]}
        assert names["verdict"]["choices"][0] in ("pass", "fail")
        assert 0.0 <= names["score"]["number"] <= 1.0
        # the judge's words, in its own control (not the reviewer's explanation box)
        assert "explanation" not in names
        assert names["judge_explanation"]["text"][0] == f"Judge {version}:"
        assert "trained on 30 reviewer labels" in names["judge_explanation"]["text"][1]

    # more labels, START_TRAINING (Label Studio's "Start training"): version 2
    with Store() as store:
        _label(store, default_schema, halueval[30:45], start=30)
    webhook("START_TRAINING")
    deadline = time.monotonic() + 30
    while retrains() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post("/setup", json={"schema": config}).get_json()["model_version"] == \
        "llmtrace-learned-v2@default@v1"
    # an event that is not about labels does not retrain
    response = client.post("/webhook", json={"action": "PROJECT_UPDATED"},
                           headers={WEBHOOK_SECRET_HEADER: "hook"})
    assert response.get_json()["retrain"] == "no"


def test_measured_on_halueval_human_labels(store, default_schema, halueval, tmp_path):
    """Train on 200 human labels, judge the other 4,307; the numbers are printed
    (run with -s) and reported, not asserted: the test asserts the pipeline works and
    does better than chance (kappa > 0)."""
    result = measure(store, default_schema, tmp_path / "learned", 200, halueval)
    print("\n" + result.line())
    assert result.train == 200 and result.test == len(halueval) - 200
    assert sum(result.predicted.values()) == result.test
    assert set(result.predicted) == {"pass", "fail"}
    assert result.accuracy > 0.6  # measured 0.746; a coin gives 0.5
    assert result.kappa > 0.0


def test_beats_the_majority_baseline_on_a_separable_set(store, default_schema, tmp_path):
    """Answers that refuse vs answers that help, worded differently each time: a model
    that learned anything must get the held-out ones right, well above always-majority."""
    topics = ["the invoice", "my password", "the refund", "a late parcel", "the app crash",
              "two-factor login", "the subscription", "a wrong charge", "the export",
              "the API limit", "an address change", "the mobile sync"]
    helpful = ["Sure: open Settings, pick {t} and press Fix; it takes a minute.",
               "Here is how to handle {t}: go to Account, choose Repair, then confirm."]
    refusing = ["I cannot help with {t}. I do not know.",
                "Sorry, I am unable to answer questions about {t}."]

    def trace(i: int, text: str) -> Trace:
        return Trace(trace_id=f"sep-{i}", output=text, messages=[
            Message(role="user", content=f"Question {i}: what about it?")])

    rows, held_out = [], []
    for i, topic in enumerate(topics):
        for j, template in enumerate(helpful + refusing):
            item = (trace(i * 10 + j, template.format(t=topic)),
                    "pass" if template in helpful else "fail")
            (held_out if i >= 9 else rows).append(item)
    rows = rows + rows[:9]  # unbalanced training set: 45 pass, 36 fail
    _label(store, default_schema, rows)
    trained = LearnedRegistry(tmp_path / "learned", min_labels=20).train(store, "default", 1)
    assert trained is not None
    judge = LearnedJudge(trained, "pass")
    truth = [label for _, label in held_out]
    predicted = [judge.judge(trace_to_task(t, default_schema)["data"]).label  # type: ignore[union-attr]
                 for t, _ in held_out]
    accuracy = sum(p == y for p, y in zip(predicted, truth, strict=True)) / len(truth)
    majority = max(truth.count("pass"), truth.count("fail")) / len(truth)
    assert majority == 0.5
    assert accuracy >= 0.9 > majority


def test_training_and_prediction_read_the_same_text(default_schema, monkeypatch):
    """The text of a trace at training equals the text of its task at prediction,
    placeholders, participant names, tool calls and redaction included."""
    monkeypatch.setenv("LS_LLMTRACE_REDACT", "email")
    trace = Trace.model_validate({
        "trace_id": "same", "output": "Mail me at ana@example.com",
        "messages": [
            {"role": "user", "name": "ana", "content": "Where is my parcel?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "name": "track",
                                                  "arguments": {"id": 7}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "in transit"}]})
    at_prediction = example_from_task(trace_to_task(trace, default_schema)["data"])
    assert example_from_trace(trace) == at_prediction
    assert "user (ana): Where is my parcel?" in at_prediction.conversation
    assert "assistant: \u2192 track [c1]" in at_prediction.conversation  # the call, inline
    assert at_prediction.answer == "Mail me at [email]"
    empty = Trace(trace_id="empty", output="Hello")
    assert example_from_trace(empty) == example_from_task(
        trace_to_task(empty, default_schema)["data"])


def test_restart_loads_the_saved_model_without_the_store(store, default_schema, halueval,
                                                          tmp_path):
    _label(store, default_schema, halueval[:30])
    first = LearnedRegistry(tmp_path / "learned", min_labels=20).train(store, "default", 1)
    assert first is not None

    def no_store():
        raise AssertionError("a saved model must not need the store")

    loaded = LearnedRegistry(tmp_path / "learned", min_labels=20).get(no_store, "default", 1)
    assert loaded is not None and loaded.version == first.version == 1
    task = trace_to_task(halueval[200][0], default_schema)["data"]
    assert LearnedJudge(loaded, "pass").judge(task) == LearnedJudge(first, "pass").judge(task)
    # a corrupt model file is retrained from the store, not fatal
    (tmp_path / "learned" / "default.v1.joblib").write_bytes(b"not a model")
    with_store = LearnedRegistry(tmp_path / "learned", min_labels=20)
    retrained = with_store.get(lambda: _Ctx(store), "default", 1)
    assert retrained is not None and retrained.version == 1


class _Ctx:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        return None
