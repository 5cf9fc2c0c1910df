"""Golden sets built from GoldenCase objects, for the gate's tests and bench/bench_gate.py.

Five kinds of case, each with a bad output, its correction and a planted regression (a
candidate that brings the bug back in its own way):

- ``ignored_tool_result``: the weather tool said rain; the bad answer said sun;
- ``hallucination``: a retrieved document gives a height; the bad answer invents another;
- ``wrong_format``: the answer must be a JSON object (the case asks for ``json_equal``);
- ``incomplete``: the bad answer stops mid-list;
- controls: a passing trace whose output is its own reference.

Every user message carries ``[[case:<id>]]``, the fake LLM server's marker, so a test can
script what the "model" answers for each case.
"""

from __future__ import annotations

import json
from pathlib import Path

from ls_llmtrace.evals.cases import (
    CaseInput,
    GoldenCase,
    GoldenManifest,
    content_sha256,
    set_id,
    write_cases,
)
from ls_llmtrace.models import Document, Message, ToolCall

KINDS = ("ignored_tool_result", "hallucination", "wrong_format", "incomplete", "control")
CITIES = ["Paris", "Lima", "Oslo", "Kyoto", "Quito", "Accra", "Perth", "Tunis"]


def _case(kind: str, i: int) -> tuple[GoldenCase, str, str]:
    """(case, an improved candidate that should pass, a regressed one that must fail)."""
    case_id = f"{kind}-{i:04d}"
    marker = f"[[case:{case_id}]]"
    city = CITIES[i % len(CITIES)]
    temp = 40 + i % 50
    common = {"case_id": case_id, "trace_id": f"t-{case_id}", "verdict": "fail",
              "reviewer": "rev@example.com", "record_keys": [f"ls:1:{i}"]}
    if kind == "ignored_tool_result":
        case = GoldenCase(
            **common, kind="failure", categories=[kind],
            input=CaseInput(
                system_prompt="You are a weather assistant. Use the tools' results.",
                messages=[Message(role="user", content=f"Weather in {city}? {marker}")],
                tool_calls=[ToolCall(name="get_weather", arguments={"city": city},
                                     result=f"rainy, {temp}F")]),
            output=f"It is sunny in {city} today.",
            corrected_output=f"It is rainy and {temp}F in {city} today.",
            reference=f"It is rainy and {temp}F in {city} today.")
        return case, f"it is rainy and {temp}F in {city} today", \
            f"It is sunny and pleasant in {city} today."
    if kind == "hallucination":
        height = 100 + i
        case = GoldenCase(
            **common, kind="failure", categories=[kind],
            input=CaseInput(
                messages=[Message(role="user", content=f"How tall is tower {i}? {marker}")],
                documents=[Document(content=f"Tower {i} in {city} is {height} metres tall.")]),
            output=f"Tower {i} is {height * 3} metres tall.",
            corrected_output=f"Tower {i} is {height} metres tall.",
            reference=f"Tower {i} is {height} metres tall.")
        return (case, f"Tower {i} is {height} metres tall!",
                f"Tower {i} is {height * 3} metres tall.")
    if kind == "wrong_format":
        ref = json.dumps({"name": f"user{i}", "age": 20 + i % 60})
        case = GoldenCase(
            **common, kind="failure", categories=[kind], checks=["json_equal"],
            input=CaseInput(system_prompt="Answer with a JSON object only.",
                            messages=[Message(role="user", content=f"Profile {i}? {marker}")]),
            output=f"name: user{i}, age: {20 + i % 60}",
            corrected_output=ref, reference=ref)
        improved = json.dumps({"age": 20 + i % 60, "name": f"user{i}"}, indent=1)
        return case, improved, f"Sure! name: user{i}, age: {20 + i % 60}"
    if kind == "incomplete":
        full = (f"To export report {i}: 1. open the app, 2. sign in, 3. open Reports, "
                "4. press Export.")
        case = GoldenCase(
            **common, kind="failure", categories=[kind],
            input=CaseInput(messages=[Message(role="user",
                                              content=f"How do I export report {i}? {marker}")]),
            output=f"To export report {i}: 1. open the",
            corrected_output=full, reference=full)
        return case, full.replace("press", "click"), f"To export report {i}: 1. open the"
    answer = f"{city} is a city; its code is C{i}."
    case = GoldenCase(
        case_id=case_id, trace_id=f"t-{case_id}", kind="control", verdict="pass",
        input=CaseInput(messages=[Message(role="user", content=f"Tell me about {city}. {marker}")]),
        output=answer, reference=answer)
    return case, answer, "I'm sorry, I cannot help with that."


def build_set(n: int) -> tuple[list[GoldenCase], dict[str, str], dict[str, str]]:
    """``n`` cases round-robin over the kinds, with improved and regressed candidates."""
    cases, improved, regressed = [], {}, {}
    for i in range(n):
        case, good, bad = _case(KINDS[i % len(KINDS)], i)
        cases.append(case)
        improved[case.case_id] = good
        regressed[case.case_id] = bad
    return cases, improved, regressed


def write_set(cases: list[GoldenCase], folder: Path, schema_id: str = "default",
              version: int = 1) -> Path:
    """The set's folder (cases.jsonl and manifest.json), as `golden build` writes it."""
    from datetime import UTC, datetime

    write_cases(cases, folder / "cases.jsonl")
    manifest = GoldenManifest(set_id=set_id(schema_id, version, cases), schema_id=schema_id,
                              schema_version=version, content_sha256=content_sha256(cases),
                              built_at=datetime.now(UTC))
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return folder
