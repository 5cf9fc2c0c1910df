"""``agreement --fetch`` against a real Label Studio and the real ML backend: the rule
judge's predictions become judge records, two reviewers (the admin and a second user)
label the tasks, and the agreement figures equal a recount of what Label Studio holds;
a second fetch writes nothing, a prediction deleted in Label Studio leaves the figures,
and ``stats --corrected`` and ``report`` run on the same store."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score
from tests.support.cluster_queue import run_cli, schema_dir

from ls_llmtrace.judging.managed import ManagedBackend
from ls_llmtrace.judging.predict import preannotate
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Source
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "sample_traces.jsonl"
JUDGE = "llmtrace-rules-v1@default@v1"


def _verdict(label: str) -> list[dict[str, object]]:
    return [{"from_name": "verdict", "to_name": "answer", "type": "choices",
             "value": {"choices": [label]}}]


def _json(*args: str) -> dict[str, object]:
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_agreement_from_real_predictions_and_two_reviewers(
        ls_client: LabelStudioClient, backend: ManagedBackend, ls_env: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    schema_dir(ls_env, monkeypatch)
    queue = f"agree-{uuid.uuid4().hex[:6]}"
    imported = run_cli("import", SAMPLES, "--queue", queue)
    assert imported.exit_code == 0, imported.output
    project_id = ls_client.find_project(f"llmtrace {queue} | default@v1")
    assert project_id is not None
    assert preannotate(ls_client, project_id, backend.url, backend.auth).created == 22
    deadline = time.monotonic() + 60
    while ls_client.prediction_count(project_id) < 22 and time.monotonic() < deadline:
        time.sleep(0.5)
    tasks = list(ls_client.all_tasks(project_id))
    judge = {t["data"]["trace_id"]: t["predictions"][0]["result"][0]["value"]["choices"][0]
             for t in tasks}
    assert len(judge) == 22

    # the admin reviews 16 tasks, agreeing with the judge on 12; a second user reviews 8
    # of them later, agreeing with the admin on 6 (the latest review decides)
    email = f"second-{uuid.uuid4().hex[:8]}@example.com"
    second = ls_client.sdk.users.create(username=email.split("@")[0], email=email)
    flip = {"pass": "fail", "fail": "pass"}
    admin, later = {}, {}
    for n, task in enumerate(sorted(tasks, key=lambda t: t["id"])[:16]):
        trace_id = task["data"]["trace_id"]
        admin[trace_id] = judge[trace_id] if n % 4 else flip[judge[trace_id]]
        ls_client.sdk.annotations.create(id=task["id"], result=_verdict(admin[trace_id]))
        if n < 8:
            later[trace_id] = admin[trace_id] if n % 4 != 1 else flip[admin[trace_id]]
    for task in tasks:
        trace_id = task["data"]["trace_id"]
        if trace_id in later:
            ls_client.sdk.annotations.create(id=task["id"], result=_verdict(later[trace_id]),
                                             completed_by=second.id)
    synced = run_cli("sync")
    assert synced.exit_code == 0, synced.output

    found = _json("agreement", "--queue", queue, "--fetch", "--json", "--resamples", "300")
    assert found["judge_version"] == JUDGE
    assert found["traces"] == {"judged": 22, "reviewed": 16, "both": 16}
    deciding = {**admin, **later}
    human = [deciding[t] == "fail" for t in sorted(deciding)]
    judged = [judge[t] == "fail" for t in sorted(deciding)]
    binary = found["binary"]
    pairs = list(zip(human, judged, strict=True))
    assert binary["confusion_counts"]["tp"] == sum(h and j for h, j in pairs)
    assert binary["accuracy"]["value"] == pytest.approx(
        sum(h == j for h, j in pairs) / 16)
    assert len(set(human)) == 2 and len(set(judged)) == 2  # kappa is defined
    assert binary["kappa"]["value"] == pytest.approx(cohen_kappa_score(human, judged))
    rel = found["reliability"]
    assert rel is not None and rel["traces_with_two_or_more"] == 8
    assert rel["among_reviewers"]["agreement"]["value"] == pytest.approx(6 / 8)
    assert rel["judge"]["pairs"] == 16
    with Store() as store:
        judge_records = [r for r in store.records(source=Source.judge.value)
                         if r.ls_project_id == project_id]
    assert len(judge_records) == 22
    assert {r.author for r in judge_records} == {JUDGE}

    again = _json("agreement", "--queue", queue, "--fetch", "--json", "--resamples", "0")
    assert "0 records written, 0 marked deleted" in again["fetched"][0]  # type: ignore[index]

    gone = next(t for t in tasks if t["data"]["trace_id"] not in deciding)
    ls_client.sdk.predictions.delete(id=gone["predictions"][0]["id"])
    after = _json("agreement", "--queue", queue, "--fetch", "--json", "--resamples", "0")
    assert "1 marked deleted" in after["fetched"][0]  # type: ignore[index]
    assert after["traces"]["judged"] == 21  # type: ignore[index]

    stats = _json("stats", "--corrected", queue, "--json")
    assert stats["corrected"]["total"]["judged"] == 21  # type: ignore[index]
    report = run_cli("report", "--queue", queue, "--out", ls_env / "report",
                     "--resamples", "100")
    assert report.exit_code == 0, report.output
    assert (ls_env / "report" / "report.html").stat().st_size > 1_000_000
