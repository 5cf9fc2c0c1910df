"""Redaction of the texts reviewers see, and the way back to the original offsets (pure).

Before anything goes to Label Studio, e-mail addresses, phone numbers, API keys and custom
patterns can be replaced by a marker (``[email]``, ``[phone]``, ``[api_key]``,
``[redacted]``). A reviewer then marks spans on the redacted text, so Label Studio's
offsets and quoted text are the redacted ones; the record keeps them as the reviewer saw
them, and adds the matching range in the original text (``Scope.original_start`` /
``original_end``).

The mapping: converting a trace records, per redacted field, its replacements as
``[start, end, original_start, original_end]`` (redacted range, original range) in the
task's ``data["redactions"]``, keyed ``answer`` or ``messages.<index>`` (only fields where
something was replaced). A span boundary outside every replacement moves by the length
difference of the replacements before it; a boundary inside a replacement widens to the
whole original match (a start to its start, an end to its end), so a span over redacted
text only maps to the original match itself.
"""

from __future__ import annotations

import re
from typing import Any

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.models import Scope

REDACTIONS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    # international with a leading +, or North-American 3-3-4 with separators; bare digit
    # runs (ids, dates, amounts) are left alone on purpose
    "phone": r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(?\d{1,4}\)?[\s.-]?){2,4}\d{2,4}"
             r"|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b)",
    "api_key": r"\b(?:sk|pk|rk)-(?:[A-Za-z]{2,8}-)?[A-Za-z0-9_-]{16,}"
               r"|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
               r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b"
               r"|(?<=Bearer )[A-Za-z0-9._~+/-]{20,}=*",
}

Replacement = tuple[int, int, int, int]
"""``(start, end, original_start, original_end)``: a marker in the redacted text and the
original text it replaced."""


def compile_patterns(names: tuple[str, ...], custom: tuple[str, ...]
                     ) -> list[tuple[re.Pattern[str], str]]:
    """``(pattern, marker)`` per redaction, in the order they apply; bad names or
    patterns are a ConfigError."""
    compiled = []
    for name in names:
        if name not in REDACTIONS:
            raise ConfigError(f"unknown redaction {name!r}: use one of {', '.join(REDACTIONS)}")
        compiled.append((re.compile(REDACTIONS[name]), f"[{name}]"))
    for pattern in custom:
        try:
            compiled.append((re.compile(pattern), "[redacted]"))
        except re.error as exc:
            raise ConfigError(f"bad redaction pattern {pattern!r}: {exc}") from exc
    return compiled


def _to_original(position: int, replacements: list[Replacement], end: bool) -> int:
    """A position in the redacted text -> the original text (see the module docstring)."""
    shift = 0
    for start, stop, original_start, original_end in replacements:
        if start < position < stop:
            return original_end if end else original_start
        if stop <= position:
            shift += (original_end - original_start) - (stop - start)
    return position + shift


def redact(text: str, patterns: list[tuple[re.Pattern[str], str]]
           ) -> tuple[str, list[Replacement]]:
    """The text with every pattern replaced in turn, and the replacements in it (sorted),
    each with the original range it stands for."""
    replacements: list[Replacement] = []
    for pattern, marker in patterns:
        matches = list(pattern.finditer(text))
        if not matches:
            continue
        pieces: list[str] = []
        new: list[Replacement] = []
        last = at = 0
        for match in matches:
            pieces.append(text[last:match.start()])
            at += match.start() - last
            new.append((at, at + len(marker), _to_original(match.start(), replacements, False),
                        _to_original(match.end(), replacements, True)))
            pieces.append(marker)
            at += len(marker)
            last = match.end()
        pieces.append(text[last:])
        # earlier replacements outside this pass's matches move with the text around them
        kept: list[Replacement] = []
        for start, stop, original_start, original_end in replacements:
            if any(m.start() < stop and start < m.end() for m in matches):
                continue  # swallowed by a new match, whose original range covers it
            moved = sum(len(marker) - (m.end() - m.start()) for m in matches
                        if m.end() <= start)
            kept.append((start + moved, stop + moved, original_start, original_end))
        replacements = sorted(kept + new)
        text = "".join(pieces)
    return text, replacements


def original_range(replacements: list[Replacement] | None, start: int, end: int
                   ) -> tuple[int, int]:
    """The range of the original text that ``start..end`` of the redacted text shows.
    ``replacements`` come back from the task data a client may have changed: entries that
    are not four whole numbers are skipped."""
    entries = replacements if isinstance(replacements, list) else []
    ordered: list[Replacement] = sorted(
        (e[0], e[1], e[2], e[3]) for e in entries
        if isinstance(e, list | tuple) and len(e) == 4
        and all(isinstance(n, int) and not isinstance(n, bool) for n in e))
    return _to_original(start, ordered, False), _to_original(end, ordered, True)


def field_key(target: str | None, message_index: int | None) -> str | None:
    """The key of a span's field in ``data["redactions"]``."""
    if target == "answer":
        return "answer"
    if target == "message" and message_index is not None:
        return f"messages.{message_index}"
    return None


def with_original_range(scope: Scope, data: dict[str, Any] | None,
                        end_message_index: int | None = None) -> Scope:
    """A text-range scope with its range in the original text, when redaction changed the
    text the span is on (a message span may end in a later message: ``end_message_index``).
    Scopes on unredacted text are returned as they are: their offsets are the original's."""
    recorded = (data or {}).get("redactions")
    if scope.kind != "text_range" or scope.start is None or scope.end is None \
            or not isinstance(recorded, dict):
        return scope
    first = recorded.get(field_key(scope.target, scope.message_index) or "")
    last_index = scope.message_index if end_message_index is None else end_message_index
    last = recorded.get(field_key(scope.target, last_index) or "")
    if not first and not last:
        return scope
    start = original_range(first, scope.start, scope.start)[0]
    end = original_range(last, scope.end, scope.end)[1]
    return scope.model_copy(update={"original_start": start, "original_end": end})
