"""The native format: JSON Lines, one :class:`Trace` per line (see docs/native-format.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from ls_llmtrace import settings
from ls_llmtrace.errors import InputError
from ls_llmtrace.ingest.importers.common import depth_over, may_nest, unreadable
from ls_llmtrace.models import Rejected, Trace, rejects_from_validation


def read_native(path: str | Path) -> Iterator[Trace | list[Rejected]]:
    """Yield a Trace per good line and a list of Rejected per bad line (streaming)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    limit = settings.max_record_bytes()
    max_depth = settings.max_depth()
    with handle:
        number = 0
        while True:
            raw_line = handle.readline(limit + 1)
            if not raw_line:
                return
            number += 1
            where = f"line {number}"
            if len(raw_line) > limit and not raw_line.endswith(b"\n"):
                while raw_line and not raw_line.endswith(b"\n"):
                    raw_line = handle.readline(1 << 20)
                yield [Rejected(str(path), where, "(record)", "a line longer than "
                                f"LS_LLMTRACE_MAX_RECORD_BYTES ({limit} bytes)")]
                continue
            try:
                text = raw_line.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield [Rejected(str(path), where, "(record)", f"not valid UTF-8: {exc.reason}",
                                raw_line.decode("utf-8", errors="replace").strip())]
                continue
            if not text:
                continue
            if not may_nest(raw_line, max_depth):
                # pydantic parses and validates in one pass, about half the cost of
                # json.loads + model_validate; anything it refuses takes the checked road
                # below, so rejects and their reasons are the same
                try:
                    trace = Trace.model_validate_json(raw_line)
                except (ValueError, TypeError, OverflowError, RecursionError):
                    pass  # ValidationError included
                else:
                    yield trace
                    continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                yield [Rejected(str(path), where, "(record)", f"not valid JSON: {exc.msg}", text)]
                continue
            except ValueError as exc:  # an integer of more digits than Python converts
                yield [Rejected(str(path), where, "(record)", f"not valid JSON: {exc}",
                                text[:2000])]
                continue
            except RecursionError:
                raw = None
            if raw is None or (may_nest(raw_line, max_depth) and depth_over(raw, max_depth)):
                yield [Rejected(str(path), where, "(record)", "nested deeper than "
                                f"LS_LLMTRACE_MAX_DEPTH ({max_depth})", text[:2000])]
                continue
            if not isinstance(raw, dict):
                yield [Rejected(str(path), where, "(record)", "a line must be a JSON object", text)]
                continue
            try:
                yield Trace.model_validate(raw)
            except ValidationError as exc:
                yield rejects_from_validation(exc, str(path), where, text)
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                yield [unreadable(str(path), where, exc, text)]
