"""A golden set in the formats other tools read: Parquet, a promptfoo suite, OpenAI Evals.

The chat a candidate answers is :func:`chat_messages`: the system prompt (with the
retrieved documents appended, as the context the application was given), then the
conversation in OpenAI's chat format (assistant tool calls as ``tool_calls`` with JSON
arguments, tool results as ``tool`` messages).

- ``cases.parquet``: one row per case; scalar fields as columns, ``categories`` and
  ``record_keys`` as lists of strings, ``input``, ``spans`` and ``rubric`` as JSON text.
- ``promptfooconfig.yaml``: one prompt (``{{ messages | dump }}``: promptfoo sends a
  prompt that is a JSON list of messages as a chat), one OpenAI-compatible provider, one
  test per case with ``vars`` (messages, reference, case id, kind, categories) and asserts:
  ``rouge-n`` against the reference (a local measure, no grader call) and, for a failure,
  ``not-contains`` for each quoted span of the bad output (the same wrong words must not
  come back); with a grader provider, also ``llm-rubric`` with the rubric entries of the
  case (the verdict's definition, and what each failure category means).
- ``openai_evals.jsonl``: ``{"input": [messages], "ideal": reference, ...}`` per case with
  a reference (OpenAI Evals' Match/Includes/model-graded sample shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ls_llmtrace.evals.cases import GoldenCase

PARQUET_FILE = "cases.parquet"
PROMPTFOO_FILE = "promptfooconfig.yaml"
OPENAI_EVALS_FILE = "openai_evals.jsonl"
DEFAULT_PROVIDER = "openai:chat:gpt-4o-mini"
ROUGE_THRESHOLD = 0.75
MIN_SPAN_WORDS = 3  # shorter quotes (a name, a number) may rightly come back


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def chat_messages(case: GoldenCase) -> list[dict[str, Any]]:
    """The case's input as OpenAI chat messages."""
    system = case.input.system_prompt
    if case.input.documents:
        docs = "\n".join(f"[{d.id or i + 1}] {d.content}"
                         for i, d in enumerate(case.input.documents))
        system = f"{system}\n\nRetrieved documents:\n{docs}" if system else \
            f"Retrieved documents:\n{docs}"
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in case.input.messages:
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            message["name"] = m.name
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": c.id or f"call_{i}", "type": "function",
                 "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
                for i, c in enumerate(m.tool_calls)]
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        out.append(message)
    return out


# Parquet ----------------------------------------------------------------------------------

_SCHEMA = pa.schema([
    ("case_id", pa.string()), ("trace_id", pa.string()), ("kind", pa.string()),
    ("input", pa.string()), ("output", pa.string()), ("corrected_output", pa.string()),
    ("reference", pa.string()), ("verdict", pa.string()), ("categories", pa.list_(pa.string())),
    ("spans", pa.string()), ("score", pa.float64()), ("explanation", pa.string()),
    ("rubric", pa.string()), ("checks", pa.list_(pa.string())), ("model", pa.string()),
    ("model_version", pa.string()), ("prompt_name", pa.string()),
    ("prompt_version", pa.string()), ("product_area", pa.string()),
    ("user_segment", pa.string()), ("reviewer", pa.string()), ("decided_by", pa.string()),
    ("record_keys", pa.list_(pa.string())),
])
_JSON_COLUMNS = ("input", "spans", "rubric")


def write_parquet(cases: list[GoldenCase], path: Path) -> None:
    rows = []
    for case in sorted(cases, key=lambda c: c.case_id):
        row = case.model_dump(mode="json")
        for column in _JSON_COLUMNS:
            row[column] = json.dumps(row[column], ensure_ascii=False, sort_keys=True)
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=_SCHEMA)
    pq.write_table(table, path)


def read_parquet(path: Path) -> list[GoldenCase]:
    """The cases back from :func:`write_parquet` (the round trip the tests check)."""
    cases = []
    for row in pq.read_table(path).to_pylist():
        for column in _JSON_COLUMNS:
            row[column] = json.loads(row[column])
        cases.append(GoldenCase.model_validate(row))
    return cases


# promptfoo --------------------------------------------------------------------------------


def rubric_text(case: GoldenCase) -> str:
    """The llm-rubric criterion: the answer must be what the passing verdict asks, and for
    a failure must not show its categories again."""
    lines = ["Grade the answer to the conversation."]
    if case.kind == "control" and case.rubric.get(case.verdict):
        lines.append(f"It passes when: {case.rubric[case.verdict]}")
    for name in case.categories:
        if name in case.rubric:
            lines.append(f"It fails when it shows {name}: {case.rubric[name]}")
    if case.reference:
        lines.append("A good answer says what this reference says: {{reference}}")
    return "\n".join(lines)


def promptfoo_asserts(case: GoldenCase, threshold: float = ROUGE_THRESHOLD,
                      grader: bool = False) -> list[dict[str, Any]]:
    asserts: list[dict[str, Any]] = []
    if case.reference:
        asserts.append({"type": "rouge-n", "value": "{{reference}}", "threshold": threshold,
                        "metric": "reference"})
    if case.kind == "failure":
        quoted = sorted({s.text.strip() for s in case.spans if s.target == "answer"
                         and len(s.text.split()) >= MIN_SPAN_WORDS})
        asserts += [{"type": "not-contains", "value": text, "metric": "repeats_bad_span"}
                    for text in quoted if not (case.reference and text in case.reference)]
    if grader and asserts:
        asserts.append({"type": "llm-rubric", "value": rubric_text(case), "metric": "rubric"})
    return asserts


def promptfoo_config(cases: list[GoldenCase], set_name: str,
                     provider: str | None = None, base_url: str | None = None,
                     threshold: float = ROUGE_THRESHOLD,
                     grader: str | None = None) -> dict[str, Any]:
    """A promptfoo suite: every case with something to check becomes a test; ``grader``
    (a promptfoo provider id, on ``base_url`` too) adds the llm-rubric checks."""
    provider_entry: dict[str, Any] = {"id": provider or DEFAULT_PROVIDER,
                                      "config": {"temperature": 0}}
    if base_url:
        provider_entry["config"]["apiBaseUrl"] = base_url
    tests = []
    for case in sorted(cases, key=lambda c: c.case_id):
        asserts = promptfoo_asserts(case, threshold, grader is not None)
        if not asserts:
            continue
        tests.append({
            "description": f"{case.kind} {case.case_id}"
                           + (f" ({', '.join(case.categories)})" if case.categories else ""),
            "vars": {"messages": chat_messages(case), "reference": case.reference or "",
                     "case_id": case.case_id, "kind": case.kind,
                     "categories": ", ".join(case.categories)},
            "assert": asserts,
            "metadata": {"case_id": case.case_id, "kind": case.kind},
        })
    config: dict[str, Any] = {
        "description": f"golden set {set_name}",
        "prompts": [{"id": "golden-chat", "label": "golden chat",
                     "raw": "{{ messages | dump }}"}],
        "providers": [provider_entry], "tests": tests}
    if grader is not None:
        grading: dict[str, Any] = {"id": grader, "config": {"temperature": 0}}
        if base_url:
            grading["config"]["apiBaseUrl"] = base_url
        config["defaultTest"] = {"options": {"provider": grading}}
    return config


def write_promptfoo(cases: list[GoldenCase], path: Path, set_name: str,
                    provider: str | None = None, base_url: str | None = None,
                    grader: str | None = None) -> int:
    """Write the suite; returns the number of tests."""
    config = promptfoo_config(cases, set_name, provider, base_url, grader=grader)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100),
                    encoding="utf-8")
    return len(config["tests"])


# OpenAI Evals -----------------------------------------------------------------------------


def openai_evals_samples(cases: list[GoldenCase]) -> list[dict[str, Any]]:
    return [{"input": chat_messages(c), "ideal": c.reference, "case_id": c.case_id,
             "kind": c.kind, "verdict": c.verdict, "categories": c.categories}
            for c in sorted(cases, key=lambda c: c.case_id) if c.reference]


def write_openai_evals(cases: list[GoldenCase], path: Path) -> int:
    samples = openai_evals_samples(cases)
    with path.open("w", encoding="utf-8") as out:
        for sample in samples:
            out.write(json.dumps(sample, ensure_ascii=False, sort_keys=True) + "\n")
    return len(samples)


def write_exports(cases: list[GoldenCase], folder: Path, set_name: str,
                  provider: str | None = None, base_url: str | None = None,
                  grader: str | None = None) -> dict[str, str]:
    """Every export into ``folder``; export name -> file name."""
    write_parquet(cases, folder / PARQUET_FILE)
    write_promptfoo(cases, folder / PROMPTFOO_FILE, set_name, provider, base_url, grader)
    write_openai_evals(cases, folder / OPENAI_EVALS_FILE)
    return {"parquet": PARQUET_FILE, "promptfoo": PROMPTFOO_FILE,
            "openai_evals": OPENAI_EVALS_FILE}
