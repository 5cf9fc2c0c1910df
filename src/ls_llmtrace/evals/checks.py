"""The gate's checks: does a candidate output do what a golden case asks? (pure)

A check takes the case, the candidate output and the gate's parameters and gives a
:class:`CheckResult`, or None when it does not apply to the case (no reference, no tool
result...). Two kinds, in one registry (:data:`CHECKS`):

- reference checks, against the case's reference (a failure's corrected output, a
  control's own output): ``exact``, ``normalized`` (case, whitespace and punctuation
  folded), ``contains`` (the normalized reference appears in the normalized candidate),
  ``json_equal`` (both parse as JSON and are equal), ``similarity`` (rapidfuzz's
  normalized Indel ratio, ``fuzz.ratio / 100``, of the normalized texts, at least
  ``similarity_threshold``), and ``not_bad_output`` (a failure's candidate must be closer to
  the correction than to the bad output the reviewer rejected);
- category checks, which a failure category carries (:data:`CATEGORY_CHECKS`):
  ``tool_result_reflected`` for ``ignored_tool_result``: the candidate contains a salient
  value of the tool results (a number, a quoted string, or a capitalized word of them that
  the bad output left out, else any of them).

To add a category check: write ``def my_check(case, output, params) -> CheckResult | None``,
register it in :data:`CHECKS` under a name, and map the category to it in
:data:`CATEGORY_CHECKS` (or in a gate config's ``categories:`` section, no code needed for
an existing check).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from ls_llmtrace.evals.cases import GoldenCase


@dataclass(frozen=True)
class CheckParams:
    """What checks may be tuned by (from the gate config)."""

    similarity_threshold: float = 0.8


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str
    category: str | None = None  # the failure category that asked for the check, if any


Check = Callable[[GoldenCase, str, CheckParams], "CheckResult | None"]

_QUOTES_DASHES = "\u2018\u2019\u201c\u201d\u2013\u2014"
_PUNCT = str.maketrans({c: " " for c in string.punctuation + _QUOTES_DASHES})


def normalize(text: str) -> str:
    """Case, whitespace and punctuation folded; Unicode compatibility form (NFKC)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return " ".join(text.split())


def similarity(a: str, b: str) -> float:
    """0..1: rapidfuzz's normalized Indel similarity of the normalized texts."""
    return float(fuzz.ratio(normalize(a), normalize(b))) / 100.0


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def exact(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    if case.reference is None:
        return None
    ok = output.strip() == case.reference.strip()
    return CheckResult("exact", ok, "identical to the reference" if ok else
                       f"differs from the reference {_short(case.reference)!r}")


def normalized(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    if case.reference is None:
        return None
    ok = normalize(output) == normalize(case.reference)
    return CheckResult("normalized", ok, "equal to the reference once normalized" if ok else
                       f"not the reference {_short(case.reference)!r} once normalized")


def contains(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    if case.reference is None:
        return None
    ok = normalize(case.reference) in normalize(output)
    return CheckResult("contains", ok, "contains the reference" if ok else
                       f"does not contain the reference {_short(case.reference)!r}")


def _json(text: str) -> tuple[bool, Any]:
    body = text.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", body, re.DOTALL)
    try:
        return True, json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError:
        return False, None


def json_equal(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    if case.reference is None:
        return None
    ref_ok, ref = _json(case.reference)
    if not ref_ok:
        return CheckResult("json_equal", False, "the reference is not JSON")
    out_ok, out = _json(output)
    if not out_ok:
        return CheckResult("json_equal", False, "the candidate is not JSON")
    ok = out == ref
    return CheckResult("json_equal", ok, "equal JSON" if ok else "JSON differs from the "
                       f"reference {_short(json.dumps(ref, sort_keys=True))!r}")


def similar(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    if case.reference is None:
        return None
    ratio = similarity(output, case.reference)
    ok = ratio >= params.similarity_threshold
    return CheckResult("similarity", ok, f"similarity {ratio:.2f} "
                       f"{'>=' if ok else '<'} {params.similarity_threshold:.2f} to the reference")


def not_bad_output(case: GoldenCase, output: str, params: CheckParams) -> CheckResult | None:
    """A failure's candidate must not be (closer to) the output the reviewer rejected."""
    bad = case.bad_output
    if bad is None or case.reference is None or normalize(bad) == normalize(case.reference):
        return None
    if normalize(output) == normalize(bad):
        return CheckResult("not_bad_output", False, "repeats the rejected output")
    to_ref, to_bad = similarity(output, case.reference), similarity(output, bad)
    ok = to_ref > to_bad
    return CheckResult("not_bad_output", ok, f"similarity {to_ref:.2f} to the correction, "
                       f"{to_bad:.2f} to the rejected output")


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*%?")
_QUOTED = re.compile(r"\"([^\"]{2,60})\"")
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9\-]{2,}\b")


def _salient(text: str) -> list[str]:
    values = _NUMBER.findall(text) + _QUOTED.findall(text) + _NAME.findall(text)
    return list(dict.fromkeys(v for v in values if v.strip()))


def _tool_texts(case: GoldenCase) -> list[str]:
    texts = []
    for call in case.input.tool_calls:
        if call.result is not None:
            texts.append(call.result if isinstance(call.result, str)
                         else json.dumps(call.result, ensure_ascii=False, sort_keys=True))
    texts += [m.content for m in case.input.messages if m.role == "tool" and m.content]
    return texts


def tool_result_reflected(case: GoldenCase, output: str,
                          params: CheckParams) -> CheckResult | None:
    """The candidate carries a salient value of the tool results: the values the bad output
    left out when there are some (that is what "ignored" means), else any salient value."""
    texts = _tool_texts(case)
    values = [v for text in texts for v in _salient(text)]
    if not values:
        return None
    bad = case.bad_output or ""
    ignored = [v for v in values if v.casefold() not in bad.casefold()]
    wanted = ignored or values
    found = [v for v in wanted if v.casefold() in output.casefold()]
    ok = bool(found)
    return CheckResult("tool_result_reflected", ok,
                       f"reflects the tool result ({found[0]!r})" if ok else
                       f"none of the tool result's values {wanted[:5]} appear in the answer")


CHECKS: dict[str, Check] = {
    "exact": exact,
    "normalized": normalized,
    "contains": contains,
    "json_equal": json_equal,
    "similarity": similar,
    "not_bad_output": not_bad_output,
    "tool_result_reflected": tool_result_reflected,
}

# The checks a failure category carries by default (a gate config adds or replaces them).
CATEGORY_CHECKS: dict[str, list[str]] = {
    "ignored_tool_result": ["tool_result_reflected"],
}

DEFAULT_CHECKS = ["similarity", "not_bad_output"]


def run_check(name: str, case: GoldenCase, output: str, params: CheckParams,
              category: str | None = None) -> CheckResult | None:
    result = CHECKS[name](case, output, params)
    if result is None or category is None:
        return result
    return CheckResult(result.check, result.passed, result.detail, category)
