"""``calibrate``: refusals, the stratified split, the interval-width arithmetic, and the
learned evaluator's calibration on real data (HaluEval), cross-checked with
scikit-learn; the calibrated settings become the backend's next model version."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.metrics import cohen_kappa_score
from tests.support.halueval import load

from ls_llmtrace.cli import main
from ls_llmtrace.evals.calibrate import (
    TooFewLabels,
    calibrate,
    labelled_items,
    labels_for_width,
    split_items,
)
from ls_llmtrace.judging.judges.base import Verdict, apply_threshold
from ls_llmtrace.judging.judges.learned import (
    LearnedJudge,
    LearnedParams,
    LearnedRegistry,
    TextModel,
    TrainedModel,
    example_from_task,
)
from ls_llmtrace.models import AnnotationRecord, Source, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

ROWS = load()


def _fill(store: Store, schema: AnnotationSchema, rows: list[tuple[Trace, str]],
          project_id: int | None = 7) -> None:
    store.upsert_traces(t for t, _ in rows)
    with store.transaction() as conn:
        for i, (trace, label) in enumerate(rows):
            store.upsert_record(conn, AnnotationRecord(
                record_key=f"ls:{project_id}:{i}", trace_id=trace.trace_id,
                schema_id=schema.id, schema_version=schema.version, source=Source.reviewer,
                label=label, author="halueval-annotators", ls_project_id=project_id))


def test_refuses_below_the_minimum_and_with_one_class(tmp_path: Path,
                                                      default_schema: AnnotationSchema) -> None:
    with Store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        _fill(store, default_schema, ROWS[:40])
        with pytest.raises(TooFewLabels, match=r"has 40 human-labelled traces; calibrate "
                           r"needs at least 100 \(--min-labels"):
            calibrate(store, default_schema, "learned", queue="q", min_labels=100)
        assert TooFewLabels.exit_code == 4
    with Store(f"sqlite:///{tmp_path / 'one.sqlite'}") as store:
        passing = [r for r in ROWS if r[1] == "pass"][:30]
        _fill(store, default_schema, passing)
        with pytest.raises(TooFewLabels, match=r"all 30 human labels .* are 'pass'"):
            calibrate(store, default_schema, "learned", queue="q", min_labels=10)
    with Store(f"sqlite:///{tmp_path / 'rare.sqlite'}") as store:
        rows = [r for r in ROWS if r[1] == "pass"][:30] + [r for r in ROWS if r[1] == "fail"][:2]
        _fill(store, default_schema, rows)
        with pytest.raises(TooFewLabels, match=r"only 2 failing traces"):
            calibrate(store, default_schema, "learned", queue="q", min_labels=10)
        assert store.calibrations() == []  # nothing saved on a refusal


def test_split_is_stratified_seeded_and_disjoint() -> None:
    fails = [label == "fail" for _, label in ROWS[:200]]
    split = split_items(fails, (0.6, 0.2, 0.2), seed=3)
    assert split == split_items(fails, (0.6, 0.2, 0.2), seed=3)
    assert split != split_items(fails, (0.6, 0.2, 0.2), seed=4)
    parts = [split.train, split.dev, split.test]
    assert sorted(i for p in parts for i in p) == list(range(200))
    assert [len(p) for p in parts] == [120, 40, 40]
    share = sum(fails) / 200
    for part in parts:
        # stratified: each split's failure share within one item of the whole set's
        assert abs(sum(fails[i] for i in part) - share * len(part)) <= 1


def test_labels_for_a_target_width_by_hand() -> None:
    # width 0.4 on 40 test items; 0.1 wanted: (0.4/0.1)^2 = 16 x 40 = 640 test items,
    # which at a 20% test share is 3,200 labels: 3,000 more than the 200 there are
    found = labels_for_width(40, 200, 0.2, 0.4, 0.1)
    assert (found["test_items_needed"], found["labels_needed"], found["more_labels"]) == \
        (640, 3200, 3000)
    assert "1/sqrt(n)" in found["method"]
    assert labels_for_width(40, 200, 0.2, 0.08, 0.1)["more_labels"] == 0  # narrow already


def test_threshold_decides_by_score() -> None:
    verdict = Verdict("pass", 0.4, "", 0.6)
    assert apply_threshold(verdict, None, "pass", "fail") is verdict
    assert apply_threshold(verdict, 0.5, "pass", "fail").label == "fail"
    assert apply_threshold(Verdict("fail", 0.7, "", 0.6), 0.5, "pass", "fail").label == "pass"


def _predict(params: LearnedParams, train: list[tuple[dict, str]], test: list[dict]
             ) -> list[str]:
    model = TextModel(params).fit([example_from_task(d) for d, _ in train],
                                  [label for _, label in train])
    judge = LearnedJudge(TrainedModel(model, 1, len(train), ""), "pass")
    out = []
    for data in test:
        verdict = judge.judge(data)
        assert verdict is not None
        out.append(verdict.label)
    return out


def test_learned_calibration_on_halueval(tmp_path: Path, default_schema: AnnotationSchema
                                         ) -> None:
    """200 real HaluEval answers with their human labels: the choice, the before/after
    figures checked with scikit-learn on the same split, and the new model version."""
    schema = default_schema
    with Store(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        _fill(store, schema, ROWS[:200])
        registry = LearnedRegistry(tmp_path / "learned", min_labels=20)
        uncalibrated = registry.train(store, schema.id, schema.version)
        assert uncalibrated is not None and uncalibrated.version == 1
        result = calibrate(store, schema, "learned", queue="halueval", project_id=7,
                           min_labels=100, seed=0, resamples=500)
        body = result.as_json()
        assert body["labels"]["total"] == 200
        assert body["tried"] == 9 * 6  # 9 fitted settings x (own label + 5 thresholds)
        items = labelled_items(store, schema, 7)
        fails = [i.fail for i in items]
        split = split_items(fails, (0.6, 0.2, 0.2), 0)
        assert body["split"]["test_trace_ids"] == [items[i].trace_id for i in split.test]

        # before: the defaults fitted on train; after: the chosen settings; both on test
        train = [(items[i].data, items[i].label) for i in split.train]
        test = [items[i] for i in split.test]
        truth = [i.label for i in test]
        before = _predict(LearnedParams(), train, [i.data for i in test])
        chosen = LearnedParams.from_dict(result.params)
        after = _predict(chosen, train, [i.data for i in test])
        assert body["before"]["test"]["kappa"]["value"] == pytest.approx(
            cohen_kappa_score(truth, before))
        assert body["after"]["test"]["kappa"]["value"] == pytest.approx(
            cohen_kappa_score(truth, after))
        for side in ("before", "after"):
            kappa = body[side]["test"]["kappa"]
            assert kappa["low"] <= kappa["value"] <= kappa["high"]
            assert body[side]["kappa"] == kappa  # where the report reads it
        # the choice is the best on dev, and never worse there than the current setting
        best = max(row["dev_kappa_best"] for row in body["candidates"])
        assert body["after"]["dev_kappa"] == pytest.approx(best)
        assert body["after"]["dev_kappa"] >= body["before"]["dev_kappa"]
        more = body["more_labels"]
        width = body["after"]["test"]["kappa"]["high"] - body["after"]["test"]["kappa"]["low"]
        assert more["current_width"] == pytest.approx(width)
        assert more["test_items_needed"] == max(40, math.ceil(40 * (width / 0.1) ** 2))

        # saved: the active calibration, and the learned evaluator's next training uses it
        active = store.active_calibration("learned", schema.id, schema.version)
        assert active is not None and active.calibration_id == result.calibration_id
        assert active.params == result.params
        assert active.result["after"]["test"]["kappa"] == body["after"]["test"]["kappa"]
        if body["changed"]:
            retrained = registry.refresh(lambda: Store(store.url), schema.id, schema.version)
            assert retrained is not None
            assert retrained.version == 2 and retrained.calibration_id == result.calibration_id
            assert retrained.model.params == chosen
        print(f"HaluEval 200, learned: before kappa {body['before']['test']['kappa']}, "
              f"after {body['after']['test']['kappa']}, chosen {chosen.describe()}, "
              f"more labels {more}")


def test_cli_writes_the_result_file_and_refuses_in_one_line(
        tmp_path: Path, default_schema: AnnotationSchema,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    monkeypatch.setenv("LS_LLMTRACE_DB", db)
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    with Store(db) as store:
        store.set_queue("halueval", 7, default_schema.id, default_schema.version, "review",
                        "halueval")
        _fill(store, default_schema, ROWS[:120])
    runner = CliRunner()
    monkeypatch.setenv("LS_LLMTRACE_CALIBRATE_MIN_LABELS", "150")
    refused = runner.invoke(main, ["calibrate", "--queue", "halueval", "--judge", "learned"])
    assert refused.exit_code == 4
    assert refused.output.count("\n") == 1 and "needs at least 150" in refused.output
    out = tmp_path / "calibration.json"
    done = runner.invoke(main, ["calibrate", "--queue", "halueval", "--judge", "learned",
                                "--min-labels", "100", "--bootstrap", "200", "--out",
                                str(out)])
    assert done.exit_code == 0, done.output
    body = json.loads(out.read_text(encoding="utf-8"))
    assert body["format"] == "ls-llmtrace.calibration/1" and body["saved"] is True
    assert body["queue"] == "halueval" and body["schema"] == default_schema.version_id
    assert Counter(body["split"][p]["n"] for p in ("train", "dev", "test")) == \
        Counter([72, 24, 24])
    assert "before:" in done.output and "after:" in done.output
    assert f"saved as calibration {body['calibration_id']}" in done.output
    # a second run on the same labels keeps the setting: no new judge version
    again = runner.invoke(main, ["calibrate", "--queue", "halueval", "--judge", "learned",
                                 "--min-labels", "100", "--bootstrap", "0", "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.output)
    assert second["changed"] is False and second["before"]["params"] == body["after"]["params"]
    with Store(db) as store:
        assert [c.active for c in store.calibrations()] == [False, True]


# The LLM judge, against the local fake provider -------------------------------------------

def _scripted_rows(n_fail: int, n_pass: int) -> list[tuple[Trace, str]]:
    rows = []
    for i in range(n_fail + n_pass):
        label = "fail" if i < n_fail else "pass"
        rows.append((Trace(trace_id=f"llm-cal-{i:02d}",
                           messages=[{"role": "user", "content": f"Question number {i}?"}],
                           output=f"Answer {i} [[case:c{i:02d}]]", source="test"), label))
    return rows


def test_llm_calibration_finds_the_threshold_the_fake_provider_is_scripted_for(
        tmp_path: Path, default_schema: AnnotationSchema,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider always answers "pass", but scores the failing traces 0.3 and the
    passing ones 0.8: the judge as it is never fails anything (test kappa 0); the calibrated
    threshold separates them (test kappa 1). The backend then serves the calibrated judge
    under its new model_version and fails a failing trace."""
    from tests.support.fake_llm_server import FakeLLM

    from ls_llmtrace.judging.backend import create_app
    from ls_llmtrace.schema.labelconfig import build_label_config

    schema = default_schema
    rows = _scripted_rows(16, 24)
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    config = build_label_config(schema)
    with FakeLLM() as llm:
        for i, (_, label) in enumerate(rows):
            score = 0.3 if label == "fail" else 0.8
            llm.script(f"c{i:02d}", {"status": 200, "content": json.dumps({
                "verdict": "pass", "score": score, "confidence": 0.7,
                "explanation": "scripted", "categories": [], "spans": []})})
        for name, value in {"LS_LLMTRACE_DB": db, "LS_LLMTRACE_HOME": str(tmp_path / "home"),
                            "LS_LLMTRACE_LLM_BASE_URL": llm.base_url,
                            "LS_LLMTRACE_JUDGE": "llm", "LS_LLMTRACE_JUDGE_CACHE": "off",
                            "LS_LLMTRACE_SCHEMA_DIR": str(Path(__file__).parents[2] /
                                                          "label_configs")}.items():
            monkeypatch.setenv(name, value)
        app = create_app().test_client()
        version_before = app.post("/setup", json={"schema": config}).get_json()[
            "model_version"]
        with Store(db) as store:
            _fill(store, schema, rows)
            result = calibrate(store, schema, "llm", queue="q", project_id=7, min_labels=20,
                               seed=1, resamples=300, llm_draws=2)
        body = result.as_json()
        assert body["before"]["test"]["kappa"]["value"] == pytest.approx(0.0)
        assert body["before"]["test"]["tpr"]["value"] == 0.0
        assert body["after"]["test"]["kappa"]["value"] == pytest.approx(1.0)
        assert 0.3 < body["after"]["threshold"] <= 0.8
        assert body["after"]["dev_kappa"] == pytest.approx(1.0) and body["changed"] is True
        assert [row["name"] for row in body["candidates"]] == [
            "current", "no-few-shot", "draw-0", "draw-0+rubric", "draw-1", "draw-1+rubric"]
        # six prompts asked about each of the 8 dev traces, then the test traces once
        assert llm.stats()["calls"] == 6 * 8 + 8
        prompts = {json.dumps(r["body"]["messages"][:-1]) for r in llm.requests_seen()}
        assert len(prompts) == 6
        # few-shot draws come from train only, with both verdicts
        test_ids = set(body["split"]["test_trace_ids"])
        for row in body["candidates"]:
            assert not set(row["params"]["few_shot_cases"]) & test_ids

        # the backend uses the calibration from its next /setup: a new model_version
        version_after = app.post("/setup", json={"schema": config}).get_json()[
            "model_version"]
        assert version_after != version_before
        assert version_after == body["after"]["model_version"]
        failing = next(t for t, label in rows if label == "fail")
        from ls_llmtrace.ingest.convert import trace_to_task

        answer = app.post("/predict", json={"tasks": [
            {"id": 1, **trace_to_task(failing, schema)}], "label_config": config}).get_json()
        [prediction] = answer["results"]
        assert prediction["model_version"] == version_after
        verdict = next(r for r in prediction["result"] if r["from_name"] == "verdict")
        assert verdict["value"]["choices"] == ["fail"]


def test_calibrations_are_stored_and_the_newest_is_active(store: Store) -> None:
    """Both engines: recording a calibration retires the previous one of its judge and
    schema version only."""
    from datetime import UTC, datetime

    from ls_llmtrace.store.calibrations import Calibration

    def record(kind: str, version: int, c: float) -> int:
        return store.record_calibration(Calibration(
            judge_kind=kind, schema_id="default", schema_version=version,
            created_at=datetime(2026, 1, 1, tzinfo=UTC), params={"c": c, "threshold": 0.4},
            result={"format": "ls-llmtrace.calibration/1"}, queue="q"))

    first = record("learned", 1, 2.0)
    other = record("llm", 1, 1.0)
    second = record("learned", 1, 8.0)
    unrelated = record("learned", 2, 0.5)
    active = store.active_calibration("learned", "default", 1)
    assert active is not None and active.calibration_id == second
    assert active.params == {"c": 8.0, "threshold": 0.4} and active.queue == "q"
    assert store.active_calibration("llm", "default", 1).calibration_id == other
    assert store.active_calibration("learned", "default", 2).calibration_id == unrelated
    assert store.active_calibration("learned", "default", 3) is None
    assert [(c.calibration_id, c.active) for c in store.calibrations("learned")] == [
        (first, False), (second, True), (unrelated, True)]
