"""The native format: JSON Lines, one :class:`Trace` per line (see docs/native-format.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from ls_llmtrace.errors import InputError
from ls_llmtrace.models import Rejected, Trace, rejects_from_validation


def read_native(path: str | Path) -> Iterator[Trace | list[Rejected]]:
    """Yield a Trace per good line and a list of Rejected per bad line (streaming)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, raw_line in enumerate(handle, start=1):
            where = f"line {number}"
            try:
                text = raw_line.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                yield [Rejected(str(path), where, "(record)", f"not valid UTF-8: {exc.reason}",
                                raw_line.decode("utf-8", errors="replace").strip())]
                continue
            if not text:
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                yield [Rejected(str(path), where, "(record)", f"not valid JSON: {exc.msg}", text)]
                continue
            if not isinstance(raw, dict):
                yield [Rejected(str(path), where, "(record)", "a line must be a JSON object", text)]
                continue
            try:
                yield Trace.model_validate(raw)
            except ValidationError as exc:
                yield rejects_from_validation(exc, str(path), where, text)
