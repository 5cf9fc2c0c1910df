"""Reading the YAML files users write (schemas, migrations, queue rules), with errors
that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ls_llmtrace.errors import LLMTraceError


def read_text(path: Path, error: type[LLMTraceError], what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what and where (PyYAML's own text spans several)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        return " ".join(f"{what or 'cannot be read'}{where}".split())
    return " ".join(str(exc).split())


def parse_yaml(text: str, origin: str, error: type[LLMTraceError]) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{origin}: not valid YAML: {_yaml_problem(exc)}") from exc
    except RecursionError as exc:
        raise error(f"{origin}: not valid YAML: nested too deep to read") from exc


def parse_yaml_mapping(text: str, origin: str, error: type[LLMTraceError],
                       what: str) -> dict[str, Any]:
    raw = parse_yaml(text, origin, error)
    if not isinstance(raw, dict):
        raise error(f"{origin}: a {what} file must be a YAML mapping")
    return raw

