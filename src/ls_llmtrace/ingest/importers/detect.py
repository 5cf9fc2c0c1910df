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
from ls_llmtrace.ingest.importers.otlp import is_flat_attribute_map, is_protobuf, read_otlp
from ls_llmtrace.models import Rejected, Trace

Reader = Callable[[Path], Iterator[Trace | list[Rejected]]]
FORMATS: dict[str, Reader] = {
    "native": read_native,
    "otlp": read_otlp,
    "langfuse": read_langfuse,
    "langsmith": read_langsmith,
}


_LOOK_AT = 100  # records detection reads past bad ones before it gives up


def detect_format(path: Path) -> str:
    """The format of a trace file, judged from its first good record (bad records before
    it are skipped: the importer rejects them one by one)."""
    if is_protobuf(path):
        return "otlp"
    first_problem = None
    for seen, (location, record) in enumerate(
            iter_json_records(path, stream_prefix="resourceSpans.item")):
        if seen >= _LOOK_AT:
            break
        if is_bad(record):
            first_problem = first_problem or f"{location}: {record}"
            continue
        name = guess_format(record)
        if name is not None:
            return name
        first_problem = first_problem or f"{location}: not a trace format we know"
    if first_problem is None:
        raise InputError(f"{path}: the file is empty")
    raise InputError(f"{path}: cannot tell the format ({first_problem}): the records are not "
                     "native JSONL, OTLP/JSON or protobuf, a Langfuse export or LangSmith runs; "
                     "pass --format native|otlp|langfuse|langsmith")


def likely_format(path: Path) -> str | None:
    """The format the file looks like, or None (never raises: for error messages)."""
    try:
        return detect_format(path)
    except (InputError, OSError):
        return None


def guess_format(record: Any) -> str | None:
    """The format one parsed record is in, or None."""
    try:
        return format_of(record)
    except InputError:
        return None


def format_of(record: Any, path: Path | str = "input") -> str:
    if isinstance(record, dict):
        if "resourceSpans" in record or "scopeSpans" in record or "resourceLogs" in record \
                or is_flat_attribute_map(record):
            return "otlp"
        if is_langfuse_export(record):
            return "langfuse"
        if is_langsmith_record(record):
            return "langsmith"
        if "trace_id" in record:
            return "native"
    raise InputError(f"{path}: the first record is not a trace format we know (native JSONL, "
                     "OTLP/JSON, Langfuse export, LangSmith runs): pass --format to say which")


def read_any(path: str | Path, fmt: str | None = None, logs: list[Path] | None = None
             ) -> Iterator[Trace | list[Rejected]]:
    """Stream a trace file in any supported format (detected unless ``fmt`` is given);
    ``logs``: other OTLP files of the same export holding the log records."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"cannot read {path}: no such file")
    for extra in logs or []:
        if not Path(extra).exists():
            raise InputError(f"cannot read {extra}: no such file")
    name = fmt or detect_format(path)
    reader = FORMATS.get(name)
    if reader is None:
        raise ConfigError(f"unknown format {name!r}: use one of {', '.join(FORMATS)}")
    if logs:
        if name != "otlp":
            raise ConfigError(f"--logs goes with OTLP exports; {path} is read as {name}")
        return read_otlp(path, logs=[Path(p) for p in logs])
    return guarded(reader(path), str(path))


def guarded(items: Iterator[Trace | list[Rejected]], file: str
            ) -> Iterator[Trace | list[Rejected]]:
    """An importer's stream with a last line of defence: an unexpected exception while
    reading one record becomes that record's reject, and the stream goes on when the
    importer can (a generator that raised is finished, so the rest is then rejected too)."""
    count = 0
    try:
        for item in items:  # only the reader raises in here (not the consumer)
            count += 1
            yield item
    except RecursionError:
        yield [Rejected(file, f"after item {count}", "(record)", "nested too deeply to read")]
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        yield [Rejected(file, f"after item {count}", "(record)",
                        f"unreadable ({type(exc).__name__}: {exc}); the rest of the file "
                        "was not read")]
