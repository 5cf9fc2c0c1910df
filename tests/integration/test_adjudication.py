"""Several reviewers and adjudication against a real Label Studio: a queue with two
reviewers per task (Label Studio's overlap), two real users each annotating with their own
token from the judge's prediction, the sync keeping both records with what each did with
the judge's proposal, Krippendorff's alpha over them, the disagreements routed to the
adjudication queue (twice: nothing duplicated), the schema owner (a third real user)
deciding there, and the owner's record deciding the trace in golden sets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from tests.support.cluster_queue import run_cli

from ls_llmtrace.evals.golden import BuildOptions, build_golden, decide
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.judging.judges.fewshot import deciding_records
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio
from ls_llmtrace.models import AnnotationRecord, Trace, TraceMetadata
from ls_llmtrace.records.adjudication import route_disagreements
from ls_llmtrace.records.sync import sync_all
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SCHEMA = load_schema(REPO / "label_configs" / "default.v1.yaml")
JUDGE_VERSION = "rules-v1@default@v1"
# trace -> (judge's verdict, reviewer A's, reviewer B's): A keeps the judge's verdict
# everywhere; B overrides it on t2, t4 and t6 (the disagreements)
PLAN = {f"t{i}": v for i, v in enumerate([
    ("fail", "fail", "fail"), ("pass", "pass", "pass"), ("fail", "fail", "pass"),
    ("pass", "pass", "pass"), ("pass", "pass", "fail"), ("fail", "fail", "fail"),
    ("fail", "fail", "pass"), ("pass", "pass", "pass")])}
DISAGREE = {"t2", "t4", "t6"}
OWNER_SAYS = {"t2": "fail", "t4": "pass", "t6": "pass"}


def _result(verdict: str, why: str | None = None, score: float | None = None,
            ) -> list[dict[str, Any]]:
    out = [{"from_name": "verdict", "to_name": "answer", "type": "choices",
            "value": {"choices": [verdict]}}]
    if score is not None:
        out.append({"from_name": "score", "to_name": "answer", "type": "number",
                    "value": {"number": score}})
    if why is not None:
        out.append({"from_name": "explanation", "to_name": "answer", "type": "textarea",
                    "value": {"text": [why]}})
    return out


@pytest.fixture(scope="module")
def people(labelstudio: tuple[ManagedLabelStudio, Credentials],
           ls_client: LabelStudioClient) -> dict[str, tuple[str, LabelStudioClient]]:
    """Two reviewers and the schema owner: real Label Studio users, each with their own
    token (read with Label Studio's own CLI), each a client of their own."""
    server, _ = labelstudio
    tag = uuid.uuid4().hex[:6]
    emails = {"a": f"rev-a-{tag}@example.com", "b": f"rev-b-{tag}@example.com",
              "owner": SCHEMA.owner}
    out = {}
    for who, email in emails.items():
        ls_client.create_user(email)
        token = server.user_token(email)
        assert token != ls_client.token
        client = LabelStudioClient(server.url, token)
        assert client.sdk.users.whoami().email == email
        out[who] = (email, client)
    assert len({c.token for _, c in out.values()}) == 3
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def _alpha(records: list[AnnotationRecord], raters: list[str]) -> float:
    traces = sorted({r.trace_id for r in records})
    code = {"pass": 0.0, "fail": 1.0}
    matrix = np.full((len(raters), len(traces)), np.nan)
    for r in records:
        matrix[raters.index(str(r.author)), traces.index(r.trace_id)] = code[str(r.label)]
    return float(krippendorff.alpha(reliability_data=matrix,
                                    level_of_measurement="nominal"))


def test_two_reviewers_disagree_owner_adjudicates(
        ls_client: LabelStudioClient, people: dict[str, tuple[str, LabelStudioClient]],
        store_url: str, ls_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = {(SCHEMA.id, SCHEMA.version): SCHEMA}
    store = Store(store_url)
    queue = f"dbl-{store.dialect[:2]}-{uuid.uuid4().hex[:4]}"
    traces = [Trace(trace_id=t, output=f"answer {t}.", metadata=TraceMetadata(
        model_version="m-1")) for t in PLAN]
    pid = import_traces(ls_client, store, traces, queue=queue, schema=SCHEMA,
                        reviewers=2).project_id
    # Label Studio's own overlap: two annotations complete a task, overlap tasks first
    assert ls_client.overlap(pid) == (2, 100, True)
    task = {trace: tid for tid, trace in ls_client.task_trace_ids(pid)}
    assert {o for o, _ in ls_client.task_overlaps(pid).values()} == {2}

    prediction = {}
    for trace, (judged, _, _) in PLAN.items():
        made = ls_client.sdk.predictions.create(
            task=task[trace], result=_result(judged, f"judge: {judged}", 0.3),
            model_version=JUDGE_VERSION, score=0.6)
        prediction[trace] = int(made.id)

    (email_a, rev_a), (email_b, rev_b) = people["a"], people["b"]
    for trace, (judged, said_a, _) in PLAN.items():
        # A submits the judge's proposal as it is (explanation included) ...
        rev_a.sdk.annotations.create(id=task[trace], result=_result(
            said_a, f"judge: {judged}", 0.3), parent_prediction=prediction[trace])
    # one annotation each is not enough for a task of overlap 2
    assert not any(done for _, done in ls_client.task_overlaps(pid).values())
    for trace, (_, _, said_b) in PLAN.items():
        # ... B keeps the score, writes their own explanation, and overrides 3 verdicts
        rev_b.sdk.annotations.create(id=task[trace], result=_result(
            said_b, f"B thinks {said_b}", 0.3), parent_prediction=prediction[trace])
    assert all(done for _, done in ls_client.task_overlaps(pid).values())

    [first] = sync_all(ls_client, store, schemas, [pid])
    assert (first.records_written, first.rejected) == (16, 0)
    reviews = [r for r in store.records(source="reviewer") if r.ls_project_id == pid]
    by = {(r.trace_id, r.author): r for r in reviews}
    assert len(by) == 16
    for trace, (judged, said_a, said_b) in PLAN.items():
        a, b = by[(trace, email_a)], by[(trace, email_b)]
        assert (a.label, b.label) == (said_a, said_b)
        for record in (a, b):
            assert record.prediction is not None
            assert (record.prediction.id, record.prediction.model_version,
                    record.prediction.judge) == (prediction[trace], JUDGE_VERSION, "rules")
        # the judge's explanation, kept as proposed, is not reviewer A's
        assert a.explanation is None
        assert a.origins == {"label": "prediction", "score": "prediction",
                             "explanation": "prediction"}
        assert b.explanation == f"B thinks {said_b}"
        assert b.origins == {
            "label": "prediction" if said_b == judged else "prediction-changed",
            "score": "prediction", "explanation": "prediction-changed"}
        assert b.accepted("label") is (said_b == judged)

    # reviewer agreement: Krippendorff's alpha on the synced records (3 of 8 differ)
    alpha = _alpha(reviews, [email_a, email_b])
    expected = krippendorff.alpha(reliability_data=[
        [1 if PLAN[t][1] == "fail" else 0 for t in sorted(PLAN)],
        [1 if PLAN[t][2] == "fail" else 0 for t in sorted(PLAN)]],
        level_of_measurement="nominal")
    assert alpha == pytest.approx(expected)
    assert alpha < 0.5

    # the disagreements go to the adjudication queue; a second run duplicates nothing
    monkeypatch.setenv("LS_LLMTRACE_DB", store_url)
    store.close()
    routed = run_cli("adjudicate", "--queue", queue, "--json")
    assert routed.exit_code == 0, routed.output
    store = Store(store_url)
    again = route_disagreements(ls_client, store, queue)
    assert (again.disagreements, again.routed, again.already) == (3, 0, 3)
    adj = store.queue(f"{queue}-adjudication")
    assert adj is not None and adj["kind"] == "adjudication"
    adj_pid = int(adj["project_id"])
    adj_task = {trace: tid for tid, trace in ls_client.task_trace_ids(adj_pid)}
    assert set(adj_task) == DISAGREE
    shown = ls_client.sdk.tasks.get(id=str(adj_task["t2"])).data["metadata"]
    assert shown[f"reviewer {email_b}"] == "pass: B thinks pass"
    assert shown[f"reviewer {email_a}"] == "fail"  # A wrote nothing of their own
    assert "reviewers disagree" in shown["adjudication"]

    # the owner decides with their own token; a reviewer's answer there does not decide
    owner_email, owner = people["owner"]
    for trace, verdict in OWNER_SAYS.items():
        owner.sdk.annotations.create(id=adj_task[trace], result=_result(verdict, "owner"))
    rev_b.sdk.annotations.create(id=adj_task["t4"], result=_result("fail", "still fail"))
    synced = sync_all(ls_client, store, schemas)
    assert sum(s.records_written for s in synced) == 4
    decisions = [r for r in store.records(source="reviewer") if r.ls_project_id == adj_pid]
    assert sorted((r.trace_id, r.author, r.adjudication) for r in decisions) == sorted([
        ("t2", owner_email, True), ("t4", email_b, False), ("t4", owner_email, True),
        ("t6", owner_email, True)])

    everything = store.records(source="reviewer")
    decided = decide(everything, SCHEMA)
    for trace in DISAGREE:
        assert decided[trace].record.author == owner_email
        assert decided[trace].record.label == OWNER_SAYS[trace]
        assert decided[trace].decided_by == "adjudication"
    assert deciding_records(everything)["t4"].author == owner_email  # by the flag alone
    # the reviewers' records are all kept
    assert len([r for r in everything if r.ls_project_id == pid]) == 16
    golden = build_golden(store, SCHEMA, queue=queue, project_id=pid,
                          options=BuildOptions(control_share=10.0, dedupe=False))
    labels = {c.trace_id: (c.verdict, c.decided_by) for c in golden.cases}
    assert labels["t2"] == ("fail", "adjudication")
    assert (labels["t4"], labels["t6"]) == (("pass", "adjudication"),) * 2
    assert all(v[1] != "adjudication" for t, v in labels.items() if t not in DISAGREE)

    # after the owner's decisions a re-run still routes nothing new
    rerun = route_disagreements(ls_client, store, queue)
    assert (rerun.routed, rerun.already) == (0, 3)
    store.close()
