"""The loop on real data (HaluEval general: real ChatGPT answers with human hallucination
labels), against the real Label Studio: import the traces, create one reviewer annotation
per task through the Label Studio API from the human label (verdict; category and span
labels on the quoted hallucinated text where the quote is found in the answer), sync, then
`golden build`: the set holds exactly the failures plus the controls asked for, with their
spans. The first 150 rows run by default; all 4,507 under `make stress`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.support.halueval import HALUEVAL

from ls_llmtrace.cli import main
from ls_llmtrace.evals.cases import read_cases
from ls_llmtrace.ingest.convert import trace_to_task
from ls_llmtrace.ingest.routing import import_traces
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import load_schema
from ls_llmtrace.store import Store

REPO = Path(__file__).resolve().parents[2]
SHARE = 0.25


def _rows(limit: int | None) -> list[dict[str, Any]]:
    with HALUEVAL.open(encoding="utf-8") as lines:
        rows = [{**json.loads(line), "line": n} for n, line in enumerate(lines, start=1)]
    return rows[:limit] if limit else rows


def _trace(row: dict[str, Any]) -> Trace:
    # by line: the file's ID column is not unique (two rows have the ID "ID")
    return Trace(trace_id=f"halueval-general-line-{row['line']}",
                 messages=[{"role": "user", "content": row["user_query"]}],
                 output=row["chatgpt_response"], source="halueval",
                 metadata={"product_area": "general", "model_version": "chatgpt"})


def _spans(answer: str, quotes: list[str]) -> list[tuple[int, int, str]]:
    """Each quoted hallucination found verbatim in the answer, once."""
    found = []
    for quote in dict.fromkeys(q for q in quotes if q.strip()):
        start = answer.find(quote)
        if start >= 0:
            found.append((start, start + len(quote), quote))
    return found


def _result(failing: bool, spans: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"from_name": "verdict", "to_name": "answer", "type": "choices",
         "value": {"choices": ["fail" if failing else "pass"]}}]
    if failing:
        out.append({"from_name": "categories", "to_name": "answer", "type": "choices",
                    "value": {"choices": ["hallucination"]}})
    for n, (start, end, text) in enumerate(spans):
        out.append({"id": f"h{n}", "from_name": "answer_spans", "to_name": "answer",
                    "type": "labels", "value": {"start": start, "end": end, "text": text,
                                                "labels": ["unsupported_claim"]}})
    return out


@pytest.fixture
def runner(ls_env: Path) -> Iterator[CliRunner]:
    yield CliRunner()


def run_loop(ls_client: LabelStudioClient, runner: CliRunner, tmp: Path, limit: int | None,
             queue: str) -> dict[str, Any]:
    started = time.monotonic()
    schema = load_schema(REPO / "label_configs" / "default.v2.yaml")
    rows = _rows(limit)
    traces = {_trace(r).trace_id: (r, _trace(r)) for r in rows}
    assert len(traces) == len(rows)
    with Store() as store:
        project_id = import_traces(ls_client, store, [t for _, t in traces.values()],
                                   queue=queue, schema=schema).project_id
    assert project_id is not None
    tasks = dict((trace_id, task_id)
                 for task_id, trace_id in ls_client.task_trace_ids(project_id))
    assert set(tasks) == set(traces)
    imported = time.monotonic()

    expected_spans: dict[str, set[tuple[int, int, str]]] = {}
    jobs = []
    for trace_id, (row, trace) in traces.items():
        failing = row["hallucination"] == "yes"
        answer = trace_to_task(trace, schema)["data"]["answer"]
        spans = _spans(answer, row["hallucination_spans"]) if failing else []
        if failing:
            expected_spans[trace_id] = set(spans)
        jobs.append((tasks[trace_id], _result(failing, spans)))
    one_task = ls_client.sdk.tasks.get(id=jobs[0][0]).data
    assert one_task["answer"] == traces[one_task["trace_id"]][1].output  # offsets hold

    def annotate(job: tuple[int, list[dict[str, Any]]]) -> int:
        return int(ls_client.sdk.annotations.create(id=job[0], result=job[1]).id)

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(annotate, jobs))
    assert len(set(created)) == len(rows)
    annotated = time.monotonic()

    synced = runner.invoke(main, ["sync", "--json"])
    assert synced.exit_code == 0, synced.output
    synced_at = time.monotonic()
    built = runner.invoke(main, ["golden", "build", "--queue", queue, "--out",
                                 str(tmp / "golden"), "--control-share", str(SHARE),
                                 "--json"])
    assert built.exit_code == 0, built.output
    manifest = json.loads(built.output)
    done = time.monotonic()

    failures = {tid for tid, (r, _) in traces.items() if r["hallucination"] == "yes"}
    cases = read_cases(Path(manifest["folder"]))
    got_failures = {c.trace_id for c in cases if c.kind == "failure"}
    controls = [c for c in cases if c.kind == "control"]
    wanted = math.floor(SHARE * len(failures) + 0.5)
    assert got_failures == failures
    assert len(controls) == wanted
    assert all(traces[c.trace_id][0]["hallucination"] == "no" for c in controls)
    assert manifest["counts"]["failures"] == len(failures)
    assert manifest["counts"]["controls"] == wanted
    assert manifest["counts"]["per_category"] == {"hallucination": len(failures)}
    assert manifest["counts"]["left_out"] == {}
    for case in cases:
        if case.kind == "failure":
            assert {(s.start, s.end, s.text) for s in case.spans} == \
                expected_spans[case.trace_id], case.trace_id
            assert all(s.labels == ["unsupported_claim"] for s in case.spans)
            assert case.categories == ["hallucination"] and case.verdict == "fail"
            assert case.output == traces[case.trace_id][1].output
        else:
            assert case.spans == [] and case.verdict == "pass"
        assert case.input.messages[0].content == traces[case.trace_id][0]["user_query"]
        assert case.record_keys[0].startswith(f"ls:{project_id}:")
    span_count = sum(len(s) for s in expected_spans.values())
    assert manifest["counts"]["spans"] == span_count
    # the same records give the same set id
    again = runner.invoke(main, ["golden", "build", "--queue", queue, "--out",
                                 str(tmp / "again"), "--control-share", str(SHARE), "--json"])
    assert json.loads(again.output)["set_id"] == manifest["set_id"]
    return {"rows": len(rows), "failures": len(failures), "controls": wanted,
            "spans": span_count, "with_spans": sum(1 for s in expected_spans.values() if s),
            "set_id": manifest["set_id"], "import_s": imported - started,
            "annotate_s": annotated - imported, "sync_s": synced_at - annotated,
            "build_s": done - synced_at, "total_s": done - started}


def test_halueval_loop_first_150(ls_client: LabelStudioClient, runner: CliRunner,
                                 tmp_path: Path) -> None:
    figures = run_loop(ls_client, runner, tmp_path, 150, "halueval-150")
    assert (figures["rows"], figures["failures"], figures["controls"]) == (150, 58, 15)
    print(figures)


@pytest.mark.stress
def test_halueval_loop_all(ls_client: LabelStudioClient, runner: CliRunner,
                           tmp_path: Path) -> None:
    figures = run_loop(ls_client, runner, tmp_path, None, "halueval-all")
    assert (figures["rows"], figures["failures"], figures["controls"]) == (4507, 815, 204)
    print(figures)
