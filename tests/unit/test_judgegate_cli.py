"""``eval judge`` end to end, through the CLI, on real HaluEval rows and their human labels,
with real judges: the LLM judge against the local OpenAI-compatible server (models that
answer the human verdict, flip a share of them, or fix some of the flips) and the learned
evaluator trained on the reviewers' labels versus the same labels shuffled. The current
judge passes, a deliberately worse version fails, a better one passes again."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.support.fake_llm_server import FakeLLM
from tests.support.halueval import load
from tests.unit.paths import DEFAULT_YAML, LABEL_CONFIGS

from ls_llmtrace.cli import main
from ls_llmtrace.evals.cases import (
    CaseInput,
    GoldenCase,
    GoldenManifest,
    content_sha256,
    set_id,
    write_cases,
)
from ls_llmtrace.models import AnnotationRecord, Message, Source, Trace
from ls_llmtrace.store import Store


@pytest.fixture(scope="module")
def halueval() -> list[tuple[Trace, str]]:
    return load()


def _golden(rows: list[tuple[Trace, str]], marked: bool) -> list[GoldenCase]:
    """HaluEval rows as golden cases: the human label is the verdict, hallucinations are
    failures, the rest controls; ``marked`` puts the fake server's case marker in the
    question (the server answers by it)."""
    cases = []
    for trace, label in rows:
        messages = [Message(role=m.role, content=m.content + (
            f" [[case:{trace.trace_id}]]" if marked else "")) for m in trace.messages]
        cases.append(GoldenCase(
            case_id=trace.trace_id, trace_id=trace.trace_id,
            kind="failure" if label == "fail" else "control",
            input=CaseInput(messages=messages), output=trace.output,
            reference=None if label == "fail" else trace.output, verdict=label,
            reviewer="halueval-annotators", decided_by="ground_truth"))
    return cases


def _write_set(cases: list[GoldenCase], folder: Path) -> Path:
    write_cases(cases, folder / "cases.jsonl")
    manifest = GoldenManifest(
        set_id=set_id("default", 1, cases), schema_id="default", schema_version=1,
        content_sha256=content_sha256(cases), built_at=datetime.now(UTC),
        counts={"failures": sum(c.kind == "failure" for c in cases),
                "controls": sum(c.kind == "control" for c in cases)})
    (folder / "manifest.json").write_text(manifest.model_dump_json(), encoding="utf-8")
    return folder


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["eval", "judge", *args])


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LS_LLMTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LS_LLMTRACE_DB", "sqlite:///" + str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(LABEL_CONFIGS))
    for name in ("LS_LLMTRACE_JUDGE", "LS_LLMTRACE_JUDGE_GOLDEN", "LS_LLMTRACE_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _reply(label: str) -> dict[str, object]:
    return {"status": 200, "content": json.dumps({
        "verdict": label, "score": 0.1 if label == "fail" else 0.9, "confidence": 0.8,
        "explanation": "scripted", "categories": [], "spans": []})}


def test_llm_judge_gate_passes_the_current_model_and_fails_a_worse_one(
        env: Path, llm: FakeLLM, halueval, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = halueval[:240]
    folder = _write_set(_golden(rows, marked=True), env / "set")
    rng = random.Random(10)
    ids = [t.trace_id for t, _ in rows]
    wrong_now = set(rng.sample(ids, 24))  # the current model misses 10%
    wrong_worse = wrong_now | set(rng.sample(ids, 60))  # the worse one about 33%
    wrong_better = set(sorted(wrong_now)[:12])  # the better one fixes half the misses
    flip = {"pass": "fail", "fail": "pass"}
    llm.reset()
    for trace, label in rows:
        for model, wrong in (("judge-now", wrong_now), ("judge-worse", wrong_worse),
                             ("judge-better", wrong_better)):
            given = flip[label] if trace.trace_id in wrong else label
            llm.script(trace.trace_id, _reply(given), model=model)
    monkeypatch.setenv("LS_LLMTRACE_LLM_BASE_URL", llm.base_url)
    monkeypatch.setenv("LS_LLMTRACE_JUDGE_CACHE", str(env / "cache.sqlite"))

    monkeypatch.setenv("LS_LLMTRACE_LLM_MODEL", "judge-now")
    now = _run(str(folder), "--judge", "llm", "--json")
    assert now.exit_code == 0, now.output
    first = json.loads(now.stdout)
    assert first["passed"] and first["reference"] is None and first["n"] == 240
    assert first["version"].startswith("judge-now:1.")
    assert first["judge"] == "llmtrace-llm"
    assert first["details"]["judge"]["rubric"] == "default@v1"
    assert first["accuracy"] == pytest.approx(0.9)
    assert first["ci"][0] < first["kappa"] < first["ci"][1]
    calls = llm.stats()["calls"]
    assert calls == 240

    again = _run(str(folder), "--judge", "llm", "--no-record")  # the same version: cached
    assert again.exit_code == 0, again.output
    assert llm.stats()["calls"] == calls
    assert "not recorded" in again.stdout and "PASS" in again.stdout

    monkeypatch.setenv("LS_LLMTRACE_LLM_MODEL", "judge-worse")
    worse = _run(str(folder), "--judge", "llm")
    assert worse.exit_code == 1, worse.output
    [line] = worse.stderr.strip().splitlines()
    assert line.startswith("FAIL: llmtrace-llm judge-worse:1.")
    assert f"below {first['version']} kappa {first['kappa']:.3f} [" in line
    assert "kappa" in worse.stdout and "n 240" in worse.stdout

    monkeypatch.setenv("LS_LLMTRACE_LLM_MODEL", "judge-better")
    better = _run(str(folder), "--judge", "llm", "--json")
    assert better.exit_code == 0, better.output
    result = json.loads(better.stdout)
    assert result["passed"] and result["kappa"] > first["kappa"]
    assert result["reference"]["version"] == first["version"]  # the failed one is skipped

    # a reply the schema rejects is no verdict: counted against the judge, not skipped
    odd = rows[0][0].trace_id
    llm.script(odd, {"status": 200, "content": "not json"}, model="judge-odd")
    monkeypatch.setenv("LS_LLMTRACE_LLM_MODEL", "judge-odd")
    monkeypatch.setenv("LS_LLMTRACE_LLM_MAX_RETRIES", "0")
    unsure = _run(str(folder), "--judge", "llm", "--json", "--no-record")
    assert unsure.exit_code == 1, unsure.output
    assert json.loads(unsure.stdout)["abstained"] == 1

    with Store() as store:
        history = [(e.judge_version.split(":")[0], e.passed)
                   for e in store.judge_evaluations("llmtrace-llm")]
    assert history == [("judge-now", True), ("judge-worse", False), ("judge-better", True)]


def _label(store: Store, rows: list[tuple[Trace, str]], labels: list[str]) -> None:
    store.upsert_traces(t for t, _ in rows)
    with store.transaction() as conn:
        for i, ((trace, _), label) in enumerate(zip(rows, labels, strict=True)):
            store.upsert_record(conn, AnnotationRecord(
                record_key=f"ls:1:{i}", trace_id=trace.trace_id, schema_id="default",
                schema_version=1, source=Source.reviewer, label=label,
                author="halueval-annotators", ground_truth=True))


def test_learned_judge_gate_fails_a_version_trained_on_shuffled_labels(
        env: Path, halueval) -> None:
    rows = halueval[:700]
    labels = [label for _, label in rows]
    folder = env / "set"
    write_cases(_golden(rows[400:], marked=False), folder / "cases.jsonl")  # no manifest
    with Store() as store:
        _label(store, rows, labels)  # the set's own traces are labelled too: held out

    current = _run(str(folder), "--judge", "learned", "--schema", str(DEFAULT_YAML), "--json",
                   "--seed", "5")
    assert current.exit_code == 0, current.output
    first = json.loads(current.stdout)
    assert first["passed"] and first["version"].startswith("1.")
    assert first["details"]["judge"] == {"trained_on": 400, "held_out": 300}
    assert first["kappa"] > 0.15  # real signal on held-out HaluEval rows

    shuffled = labels[:400]
    random.Random(3).shuffle(shuffled)
    with Store() as store:
        _label(store, rows[:400], shuffled)
    worse = _run(str(folder), "--judge", "learned", "--schema", str(DEFAULT_YAML),
                 "--seed", "5")
    assert worse.exit_code == 1, worse.output
    line = worse.stderr.strip().splitlines()[-1]
    assert line.startswith("FAIL: llmtrace-learned 2.")
    assert f"below {first['version']} kappa {first['kappa']:.3f}" in line


def test_an_unreachable_llm_endpoint_is_exit_6_not_a_regression(
        env: Path, halueval: list[tuple[Trace, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _write_set(_golden(halueval[:20], marked=False), env / "set")
    monkeypatch.setenv("LS_LLMTRACE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LS_LLMTRACE_LLM_MAX_RETRIES", "0")
    result = _run(str(folder), "--judge", "llm")
    assert result.exit_code == 6, result.output
    assert "Error:" in result.stderr and "Traceback" not in result.output
