"""The golden set's canonical form: typed cases, a manifest, and the set's content id (pure).

A golden set is a folder::

    golden/<set_id>/
        cases.jsonl      the canonical form: one GoldenCase per line, sorted by case_id
        manifest.json    how it was built (GoldenManifest)
        ...              exports for other tools (Parquet, promptfoo, OpenAI Evals)

The set id is ``<schema_id>@v<version>-<first 12 hex of the content hash>``; the hash covers
the cases only (never the build time), so the same records give the same id.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.models import Document, Message, StrictModel, ToolCall, problems

CASES_FILE = "cases.jsonl"
MANIFEST_FILE = "manifest.json"

CaseKind = Literal["failure", "control"]
DecidedBy = Literal["ground_truth", "adjudication", "latest_review"]


class CaseInput(StrictModel):
    """What the application was given: a candidate answers this again."""

    system_prompt: str = ""
    messages: list[Message] = Field(default_factory=list, description="The conversation, in order.")
    documents: list[Document] = Field(default_factory=list, description="Retrieved context.")
    tool_calls: list[ToolCall] = Field(
        default_factory=list, description="Tool calls made during the trace, with their results.")


class SpanLabel(StrictModel):
    """A reviewer's span label with the text it quotes."""

    labels: list[str]
    text: str = Field(description="The quoted text, as the reviewer saw it.")
    target: Literal["answer", "message"] = "answer"
    message_index: int | None = None
    start: int | None = None
    end: int | None = None


class GoldenCase(StrictModel):
    """One regression case: a reviewed failure (with its correction) or a passing control."""

    case_id: str = Field(description="Stable id: the trace id (one case per trace).")
    trace_id: str
    kind: CaseKind
    input: CaseInput
    output: str = Field(description="The answer the reviewer judged (the bad output of a failure).")
    corrected_output: str | None = Field(None, description="The reviewer's corrected answer.")
    reference: str | None = Field(
        None, description="What a candidate is checked against: the corrected output of a "
        "failure, the output of a control; None when there is none.")
    verdict: str = Field(description="The deciding label, e.g. `fail`.")
    categories: list[str] = Field(default_factory=list, description="Failure categories.")
    spans: list[SpanLabel] = Field(default_factory=list)
    score: float | None = None
    explanation: str | None = None
    rubric: dict[str, str] = Field(
        default_factory=dict, description="Rubric definitions of the verdict and categories.")
    checks: list[str] | None = Field(
        None, description="Reference checks this case calls for; None: the gate's default.")
    model: str | None = None
    model_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    product_area: str | None = None
    user_segment: str | None = None
    reviewer: str | None = None
    decided_by: DecidedBy = "latest_review"
    record_keys: list[str] = Field(default_factory=list, description="Records it came from.")

    @property
    def bad_output(self) -> str | None:
        return self.output if self.kind == "failure" else None


class GoldenManifest(StrictModel):
    """How a golden set was built; written beside its cases."""

    set_id: str
    schema_id: str
    schema_version: int
    content_sha256: str
    queue: str | None = None
    project_id: int | None = None
    built_at: datetime
    filters: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict, description="Control share, seed...")
    counts: dict[str, Any] = Field(
        default_factory=dict, description="failures, controls, per category, left out by reason.")
    files: dict[str, str] = Field(default_factory=dict, description="Export name -> file name.")


def canonical_line(case: GoldenCase) -> str:
    return json.dumps(case.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def content_sha256(cases: list[GoldenCase]) -> str:
    """The hash of the canonical JSONL of the cases (in case_id order)."""
    digest = hashlib.sha256()
    for case in sorted(cases, key=lambda c: c.case_id):
        digest.update(canonical_line(case).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def set_id(schema_id: str, schema_version: int, cases: list[GoldenCase]) -> str:
    return f"{schema_id}@v{schema_version}-{content_sha256(cases)[:12]}"


def write_cases(cases: list[GoldenCase], path: Path) -> None:
    """Write the canonical JSONL atomically (sorted by case_id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for case in sorted(cases, key=lambda c: c.case_id):
            out.write(canonical_line(case) + "\n")
    tmp.replace(path)


def cases_path(path: Path) -> Path:
    """A set's folder or its cases file -> the cases file."""
    return path / CASES_FILE if path.is_dir() else path


def read_cases(path: Path) -> list[GoldenCase]:
    """Read a golden set (its folder or its cases.jsonl); a bad line is a ConfigError naming
    the file, the line and the field."""
    file = cases_path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the golden set {file}: {exc.strerror or exc}") from None
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            cases.append(GoldenCase.model_validate_json(line))
        except ValidationError as exc:
            raise ConfigError(f"{file}: line {number}: {problems(exc)}") from None
    return cases


def read_manifest(path: Path) -> GoldenManifest | None:
    folder = path if path.is_dir() else path.parent
    file = folder / MANIFEST_FILE
    if not file.exists():
        return None
    try:
        return GoldenManifest.model_validate_json(file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{file}: {problems(exc)}") from None
