"""golden build: deciding records, migration of older records, controls, near-duplicates,
--require-corrected, the set id, the writers (JSONL, Parquet, promptfoo, OpenAI Evals)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from ls_llmtrace.cli import main
from ls_llmtrace.evals import dedupe, exporters
from ls_llmtrace.evals.cases import read_cases, read_manifest
from ls_llmtrace.evals.golden import (
    DUP_FAILURE,
    NO_MIGRATION,
    NOT_CORRECTED,
    BuildFilters,
    BuildOptions,
    build_golden,
    write_golden,
)
from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace
from ls_llmtrace.schema.model import AnnotationSchema, load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
TESTS_SCHEMAS = REPO / "tests" / "schemas"
T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
_ids = count(1)


@pytest.fixture
def v2() -> AnnotationSchema:
    return load_schema(REPO / "label_configs" / "default.v2.yaml")


@pytest.fixture
def db(tmp_path: Path):
    s = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield s
    s.close()


def rec(trace_id: str, label: str | None, minutes: int = 0, schema_id: str = "default",
        version: int = 2, **extra) -> AnnotationRecord:
    annotation_id = next(_ids)
    when = T0 + timedelta(minutes=minutes)
    base = dict(record_key=f"ls:1:{annotation_id}", trace_id=trace_id, schema_id=schema_id,
                schema_version=version, source=Source.reviewer, label=label,
                author=f"rev{annotation_id}@example.com", created_at=when, updated_at=when,
                ls_project_id=1, ls_task_id=100, ls_annotation_id=annotation_id)
    base.update(extra)
    return AnnotationRecord(**base)


def span(of: AnnotationRecord, labels: list[str], text: str, start: int) -> AnnotationRecord:
    return of.model_copy(update={
        "record_key": f"{of.record_key}:r{start}", "label": None, "labels": labels,
        "scope": Scope(kind="text_range", target="answer", start=start,
                       end=start + len(text), text=text)})


def put(store: Store, *records: AnnotationRecord) -> None:
    with store.transaction() as conn:
        for r in records:
            Store.upsert_record(conn, r)


def trace(i: str, question: str | None = None, **meta) -> Trace:
    return Trace.model_validate({
        "trace_id": i, "system_prompt": "You answer weather questions.",
        "messages": [
            {"role": "user", "content": question or f"What is the weather in city {i} today, "
             f"and should I bring an umbrella for trip number {i}?"},
            {"role": "assistant", "content": "",
             "tool_calls": [{"id": f"c{i}", "name": "weather", "arguments": {"city": i}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "rainy, 57F"}],
        "documents": [{"id": "d1", "content": f"doc {i}"}],
        "output": f"It is sunny in {i}, no umbrella needed.",
        "metadata": {"model": "gpt-x", "model_version": meta.get("mv", "m-1"),
                     "prompt_version": "p-3", "product_area": meta.get("area", "weather"),
                     "user_segment": "free"}})


def build(store: Store, schema: AnnotationSchema, **options) -> tuple:
    schema_dir = options.pop("schema_dir", None)
    filters = options.pop("filters", None)
    golden = build_golden(store, schema, queue="q", project_id=1, filters=filters,
                          options=BuildOptions(**options), schema_dir=schema_dir)
    return golden, {c.trace_id: c for c in golden.cases}


# the deciding record ----------------------------------------------------------------------


def test_deciding_record_ground_truth_then_owner_then_latest(db: Store, v2) -> None:
    db.upsert_traces([trace("gt"), trace("owner"), trace("latest")])
    owner = v2.owner
    put(db,
        rec("gt", "fail", 0, ground_truth=True, corrected_output="gt fix", labels=["unsafe"]),
        rec("gt", "pass", 50, author=owner),
        rec("gt", "pass", 90),
        rec("owner", "fail", 10, author=owner, corrected_output="owner fix",
            labels=["hallucination"]),
        rec("owner", "pass", 90),
        rec("latest", "pass", 0),
        rec("latest", "fail", 30, corrected_output="latest fix", labels=["incomplete"]),
        rec("latest", "pass", 90, was_cancelled=True),
        rec("latest", "pass", 95, deleted=True))
    golden, cases = build(db, v2, control_share=0)
    assert {t: (c.decided_by, c.corrected_output, c.categories) for t, c in cases.items()} == {
        "gt": ("ground_truth", "gt fix", ["unsafe"]),
        "owner": ("adjudication", "owner fix", ["hallucination"]),
        "latest": ("latest_review", "latest fix", ["incomplete"])}
    assert golden.manifest.counts["decided_by"] == {
        "adjudication": 1, "ground_truth": 1, "latest_review": 1}


def test_case_carries_input_spans_rubric_and_keys(db: Store, v2) -> None:
    db.upsert_traces([trace("t1")])
    top = rec("t1", "fail", score=0.25, explanation="Tool said rain.",
              corrected_output="It is rainy and 57F in t1: bring an umbrella.",
              labels=["ignored_tool_result"])
    wrong = span(top, ["wrong_fact"], "sunny", 9)
    put(db, top, wrong)
    _, cases = build(db, v2, control_share=0)
    case = cases["t1"]
    assert case.kind == "failure" and case.verdict == "fail"
    assert case.input.system_prompt == "You answer weather questions."
    assert [m.role for m in case.input.messages] == ["user", "assistant", "tool"]
    assert case.input.documents[0].content == "doc t1"
    assert [(c.name, c.result) for c in case.input.tool_calls] == [("weather", "rainy, 57F")]
    assert case.output == "It is sunny in t1, no umbrella needed."
    assert case.reference == case.corrected_output
    assert [(s.labels, s.text, s.start, s.end) for s in case.spans] == \
        [(["wrong_fact"], "sunny", 9, 14)]
    assert case.rubric == {n: v2.rubric[n].definition
                           for n in ("fail", "ignored_tool_result", "wrong_fact")}
    assert (case.score, case.explanation) == (0.25, "Tool said rain.")
    assert (case.model, case.model_version, case.prompt_version, case.product_area,
            case.user_segment) == ("gpt-x", "m-1", "p-3", "weather", "free")
    assert case.record_keys == [top.record_key, wrong.record_key]
    assert case.reviewer == top.author


def test_filters_narrow_the_records(db: Store, v2) -> None:
    db.upsert_traces([trace("a", mv="m-1"), trace("b", mv="m-2")])
    put(db, rec("a", "fail", 0), rec("b", "fail", 600))
    _, cases = build(db, v2, control_share=0, filters=BuildFilters(model_version="m-2"))
    assert set(cases) == {"b"}
    _, cases = build(db, v2, control_share=0,
                     filters=BuildFilters(until=T0 + timedelta(minutes=60)))
    assert set(cases) == {"a"}


# older schema versions -------------------------------------------------------------------


def test_older_records_migrate_or_are_counted(db: Store, tmp_path: Path) -> None:
    triage_v2 = load_schema(TESTS_SCHEMAS / "triage.v2.yaml")
    db.upsert_traces([trace("old"), trace("new"), trace("newest-wins")])
    put(db,
        rec("old", "fail", 0, schema_id="triage", version=1,
            labels=["hallucination", "truncated"], corrected_output="fix"),
        rec("new", "fail", 0, schema_id="triage", version=2, labels=["off_topic"]),
        rec("newest-wins", "fail", 0, schema_id="triage", version=1, labels=["incomplete"]),
        rec("newest-wins", "pass", 30, schema_id="triage", version=2))
    golden, cases = build(db, triage_v2, control_share=1, schema_dir=TESTS_SCHEMAS)
    assert cases["old"].categories == ["fabrication", "incomplete_answer"]
    assert cases["new"].categories == ["off_topic"]
    assert cases["newest-wins"].kind == "control"
    assert golden.manifest.counts["left_out"] == {}
    # without the migration file the v1 records are left out, with their count
    bare = tmp_path / "schemas"
    bare.mkdir()
    golden, cases = build(db, triage_v2, control_share=1, schema_dir=bare)
    assert set(cases) == {"new", "newest-wins"}
    assert golden.manifest.counts["left_out"] == {NO_MIGRATION: 2}


# controls ------------------------------------------------------------------------------------


def _many(db: Store, failures: int, passing: int, area_of=lambda i: "weather") -> None:
    db.upsert_traces([trace(f"f{i}", area=area_of(i)) for i in range(failures)]
                     + [trace(f"p{i}", area=area_of(i)) for i in range(passing)])
    put(db, *[rec(f"f{i}", "fail", corrected_output=f"fix {i}") for i in range(failures)],
        *[rec(f"p{i}", "pass") for i in range(passing)])


def test_controls_are_share_times_failures_rounded_half_up(db: Store, v2) -> None:
    _many(db, failures=10, passing=40)
    for share, wanted in ((0.25, 3), (0.24, 2), (0.35, 4), (1.0, 10), (0.0, 0), (9.0, 40)):
        golden, _ = build(db, v2, control_share=share)
        assert golden.manifest.counts["failures"] == 10
        assert golden.manifest.counts["controls"] == wanted, share


def test_controls_are_stable_seeded_and_stratified(db: Store, v2) -> None:
    # failures: 6 in billing, 2 in weather; passing traces in both areas
    _many(db, failures=8, passing=40, area_of=lambda i: "billing" if i % 4 else "weather")
    first, _ = build(db, v2, control_share=0.5, seed=7)
    again, _ = build(db, v2, control_share=0.5, seed=7)
    other, _ = build(db, v2, control_share=0.5, seed=8)
    controls = [c for c in first.cases if c.kind == "control"]
    assert [c.case_id for c in controls] == \
        [c.case_id for c in again.cases if c.kind == "control"]
    assert {c.case_id for c in controls} != \
        {c.case_id for c in other.cases if c.kind == "control"}
    assert sorted(c.product_area for c in controls) == ["billing"] * 3 + ["weather"]
    # a new passing trace does not reshuffle the controls already drawn
    db.upsert_traces([trace("p-new", area="billing")])
    put(db, rec("p-new", "pass"))
    more, _ = build(db, v2, control_share=0.5, seed=7)
    moved = {c.case_id for c in more.cases if c.kind == "control"} ^ \
        {c.case_id for c in controls}
    assert moved <= {"p-new"} | {c.case_id for c in controls}
    assert len(moved) in (0, 2)


# near-duplicates -------------------------------------------------------------------------------


def test_dedupe_measure() -> None:
    a = "What is the weather in Paris today, should I take an umbrella with me tomorrow?"
    assert dedupe.jaccard(a, a.upper() + "  ") == 1.0
    assert dedupe.jaccard(a, a.replace("tomorrow", "tonight")) < 0.9
    long = " ".join(f"word{i}" for i in range(60))
    near = long + " extra"
    assert dedupe.jaccard(long, near) >= 0.9
    assert dedupe.keep_mask([long, near, a]) == [True, False, True]
    assert dedupe.keep_mask([near], kept_before=[long]) == [False]
    assert dedupe.keep_mask([]) == []


def test_near_duplicate_failures_collapse_keeping_ground_truth(db: Store, v2) -> None:
    question = " ".join(f"w{i}" for i in range(80))
    db.upsert_traces([trace("dup-a", question), trace("dup-b", question + " please"),
                      trace("dup-c", question + " thanks"), trace("other")])
    put(db, rec("dup-a", "fail"), rec("dup-b", "fail", ground_truth=True),
        rec("dup-c", "fail", corrected_output="fix"), rec("other", "fail"))
    golden, cases = build(db, v2, control_share=0)
    assert set(cases) == {"dup-b", "other"}
    assert golden.manifest.counts["left_out"] == {DUP_FAILURE: 2}
    _, cases = build(db, v2, control_share=0, dedupe=False)
    assert len(cases) == 4


def test_require_corrected_counts_what_it_leaves_out(db: Store, v2) -> None:
    db.upsert_traces([trace("fixed"), trace("bare"), trace("bare2"), trace("ok")])
    put(db, rec("fixed", "fail", corrected_output="fix"), rec("bare", "fail"),
        rec("bare2", "fail"), rec("ok", "pass"))
    golden, cases = build(db, v2, control_share=1, require_corrected=True)
    assert {t: c.kind for t, c in cases.items()} == {"fixed": "failure", "ok": "control"}
    assert golden.manifest.counts["left_out"] == {NOT_CORRECTED: 2}


# the set id and the writers ------------------------------------------------------------------


def test_set_id_depends_on_the_records_not_the_build_time(db: Store, v2, tmp_path) -> None:
    _many(db, failures=3, passing=6)
    one = build_golden(db, v2, options=BuildOptions(), now=T0)
    two = build_golden(db, v2, options=BuildOptions(), now=T0 + timedelta(days=3))
    assert one.set_id == two.set_id and one.set_id.startswith("default@v2-")
    assert one.manifest.built_at != two.manifest.built_at
    folder_one = write_golden(one, tmp_path / "a")
    folder_two = write_golden(two, tmp_path / "b")
    assert (folder_one / "cases.jsonl").read_bytes() == (folder_two / "cases.jsonl").read_bytes()
    put(db, rec("f0", "fail", 99, corrected_output="a newer fix"))
    three = build_golden(db, v2, options=BuildOptions(), now=T0)
    assert three.set_id != one.set_id


def test_writers_round_trip(db: Store, v2, tmp_path: Path) -> None:
    db.upsert_traces([trace("t1"), trace("t2")])
    top = rec("t1", "fail", corrected_output="It is rainy and 57F in t1.",
              labels=["ignored_tool_result"])
    put(db, top, span(top, ["wrong_fact"], "sunny in t1, no umbrella", 6), rec("t2", "pass"))
    golden, _ = build(db, v2, control_share=1)
    folder = write_golden(golden, tmp_path, promptfoo_base_url="http://127.0.0.1:9/v1")
    assert folder.name == golden.set_id.replace("@", "_")
    assert read_cases(folder) == golden.cases
    manifest = read_manifest(folder)
    assert manifest is not None and manifest.set_id == golden.set_id
    assert manifest.counts["per_category"] == {"ignored_tool_result": 1}
    assert set(manifest.files) == {"cases", "parquet", "promptfoo", "openai_evals", "manifest"}

    table = pq.read_table(folder / "cases.parquet")
    assert table.num_rows == 2
    assert table.column("categories").to_pylist() == [["ignored_tool_result"], []]
    assert json.loads(table.column("spans").to_pylist()[0])[0]["labels"] == ["wrong_fact"]
    assert exporters.read_parquet(folder / "cases.parquet") == golden.cases

    config = yaml.safe_load((folder / "promptfooconfig.yaml").read_text())
    assert config["providers"][0]["config"]["apiBaseUrl"] == "http://127.0.0.1:9/v1"
    first, second = config["tests"]
    assert first["vars"]["messages"][0]["role"] == "system"
    assert "Retrieved documents:\n[d1] doc t1" in first["vars"]["messages"][0]["content"]
    assistant = first["vars"]["messages"][2]
    assert assistant["tool_calls"][0]["function"] == {"name": "weather",
                                                       "arguments": '{"city": "t1"}'}
    assert first["vars"]["messages"][3] == {"role": "tool", "content": "rainy, 57F",
                                            "tool_call_id": "ct1"}
    assert [a["type"] for a in first["assert"]] == ["rouge-n", "not-contains"]
    assert first["assert"][1]["value"] == "sunny in t1, no umbrella"
    assert first["vars"]["reference"] == "It is rainy and 57F in t1."
    assert second["vars"]["reference"] == "It is sunny in t2, no umbrella needed."
    assert [a["type"] for a in second["assert"]] == ["rouge-n"]

    samples = [json.loads(line) for line in
               (folder / "openai_evals.jsonl").read_text().splitlines()]
    assert [s["ideal"] for s in samples] == ["It is rainy and 57F in t1.",
                                             "It is sunny in t2, no umbrella needed."]
    assert samples[0]["input"] == first["vars"]["messages"]


def test_failure_without_reference_has_no_reference_checks(db: Store, v2) -> None:
    db.upsert_traces([trace("t1")])
    put(db, rec("t1", "fail"))
    golden, _ = build(db, v2, control_share=0)
    assert exporters.promptfoo_config(golden.cases, "x")["tests"] == []
    assert exporters.openai_evals_samples(golden.cases) == []


def test_cli_golden_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_LLMTRACE_DB", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("LS_LLMTRACE_SCHEMA_DIR", str(REPO / "label_configs"))
    runner = CliRunner()
    unknown = runner.invoke(main, ["golden", "build", "--queue", "nope"])
    assert unknown.exit_code != 0 and "queue 'nope' is not known" in unknown.output
    with Store() as db:
        db.set_queue("q", 1, "default", 2, "review", "llmtrace q | default@v2")
        db.upsert_traces([trace("a"), trace("b"), trace("c")])
        put(db, rec("a", "fail", corrected_output="fix"), rec("b", "fail"), rec("c", "pass"))
    result = runner.invoke(main, ["golden", "build", "--queue", "q", "--out",
                                  str(tmp_path / "golden"), "--require-corrected",
                                  "--control-share", "1", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["counts"]["failures"] == 1 and manifest["counts"]["controls"] == 1
    assert manifest["counts"]["left_out"] == {NOT_CORRECTED: 1}
    assert manifest["queue"] == "q" and manifest["project_id"] == 1
    assert len(read_cases(Path(manifest["folder"]))) == 2


def test_promptfoo_grader_adds_llm_rubric_with_the_case_rubric(db: Store, v2) -> None:
    db.upsert_traces([trace("t1")])
    put(db, rec("t1", "fail", corrected_output="rainy", labels=["ignored_tool_result"]))
    golden, _ = build(db, v2, control_share=0)
    plain = exporters.promptfoo_config(golden.cases, "x")
    assert "defaultTest" not in plain
    assert [a["type"] for a in plain["tests"][0]["assert"]] == ["rouge-n"]
    graded = exporters.promptfoo_config(golden.cases, "x", base_url="http://h/v1",
                                        grader="openai:chat:judge")
    assert graded["defaultTest"]["options"]["provider"] == {
        "id": "openai:chat:judge", "config": {"temperature": 0, "apiBaseUrl": "http://h/v1"}}
    rubric = graded["tests"][0]["assert"][-1]
    assert rubric["type"] == "llm-rubric"
    assert v2.rubric["ignored_tool_result"].definition in rubric["value"]
    assert "{{reference}}" in rubric["value"]
