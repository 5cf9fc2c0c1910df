"""The code carries no history and no copies of its small helpers: no issue-number markers,
one strict model base, one validation-error formatter, one Rejected, one write_rejects."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.paths import ROOT

SRC = ROOT / "src" / "ls_llmtrace"
CHECKED = ["src", "tests", "backend", "bench", "examples", "docs"]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".xml", ".html"}


def _files(*roots: str) -> list[Path]:
    out = []
    for root in roots:
        out += [p for p in (ROOT / root).rglob("*") if p.is_file()
                and p.suffix in TEXT_SUFFIXES and ".venv" not in p.parts]
    return out + [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]


def _matches(pattern: str, files: list[Path]) -> list[str]:
    regex = re.compile(pattern, re.IGNORECASE)
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if regex.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def test_no_issue_number_markers():
    here = Path(__file__).resolve()
    files = [p for p in _files(*CHECKED) if p.resolve() != here]
    assert _matches(r"\bissue \d", files) == []


def test_one_strict_model_base():
    sources = list(SRC.rglob("*.py"))
    assert [h.split(":")[0] for h in _matches(r'extra\s*=\s*"forbid"', sources)] == [
        "src/ls_llmtrace/models.py"]
    assert [h.split(": ", 1)[1] for h in _matches(r"^class \w+\(BaseModel\)", sources)] == [
        "class StrictModel(BaseModel):"]


def test_one_validation_error_formatter_one_rejected_one_write_rejects():
    sources = list(SRC.rglob("*.py"))
    assert [h.split(":")[0] for h in _matches(r"""\[["']loc["']\]""", sources)] == [
        "src/ls_llmtrace/models.py"]
    assert _matches(r"errors\(\)\[0\]", sources) == []
    assert [h.split(":")[0] for h in _matches(r"^class Rejected\b", sources)] == [
        "src/ls_llmtrace/models.py"]
    assert [h.split(":")[0] for h in _matches(r"^def write_rejects\b", sources)] == [
        "src/ls_llmtrace/models.py"]


def test_judging_does_not_reach_up_into_evals():
    """Judging sits below evals: the LLM judge's few-shot cases are read in judging."""
    sources = list((SRC / "judging").rglob("*.py"))
    assert _matches(r"ls_llmtrace\.evals|from ls_llmtrace import evals", sources) == []
