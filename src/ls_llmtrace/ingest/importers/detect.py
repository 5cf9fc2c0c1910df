"""Pick the importer by looking at the file's first record (or by ``--format``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ls_llmtrace.errors import ConfigError, InputError
from ls_llmtrace.ingest.importers.common import is_bad, iter_json_records
from ls_llmtrace.ingest.importers.langfuse import is_langfuse_export, read_langfuse
from ls_llmtrace.ingest.importers.langsmith import is_langsmith_record, read_langsmith
from ls_llmtrace.ingest.importers.native import read_native
from ls_llmtrace.ingest.importers.otlp import is_flat_attribute_map, read_otlp
from ls_llmtrace.models import Rejected, Trace

Reader = Callable[[Path], Iterator[Trace | list[Rejected]]]
FORMATS: dict[str, Reader] = {
    "native": read_native,
    "otlp": read_otlp,
    "langfuse": read_langfuse,
    "langsmith": read_langsmith,
}


def detect_format(path: Path) -> str:
    """The format of a trace file, judged from its first record."""
    for location, record in iter_json_records(path, stream_prefix="resourceSpans.item"):
        if is_bad(record):
            raise InputError(f"{path}: {location}: cannot tell the format: {record}; "
                             "pass --format native|otlp|langfuse|langsmith")
        return format_of(record, path)
    raise InputError(f"{path}: the file is empty")


def format_of(record: Any, path: Path | str = "input") -> str:
    if isinstance(record, dict):
        if "resourceSpans" in record or "scopeSpans" in record or is_flat_attribute_map(record):
            return "otlp"
        if is_langfuse_export(record):
            return "langfuse"
        if is_langsmith_record(record):
            return "langsmith"
        if "trace_id" in record:
            return "native"
    raise InputError(f"{path}: the first record is not a trace format we know (native JSONL, "
                     "OTLP/JSON, Langfuse export, LangSmith runs): pass --format to say which")


def read_any(path: str | Path, fmt: str | None = None) -> Iterator[Trace | list[Rejected]]:
    """Stream a trace file in any supported format (detected unless ``fmt`` is given)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"cannot read {path}: no such file")
    name = fmt or detect_format(path)
    reader = FORMATS.get(name)
    if reader is None:
        raise ConfigError(f"unknown format {name!r}: use one of {', '.join(FORMATS)}")
    return reader(path)
