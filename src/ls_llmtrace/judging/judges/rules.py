"""The offline rule judge: cheap, deterministic checks that need no model.

It is the walking skeleton's judge and the fallback when no LLM is configured. It only
flags what rules can see (an empty answer, a failed run, an answer cut off mid-sentence,
a refusal); when no rule fires it proposes ``pass`` with low confidence, and says so.
"""

from __future__ import annotations

import re
from typing import Any

from ls_llmtrace.judging.judges.base import Verdict

_REFUSAL = re.compile(
    r"\b(I(?:'m| am) (?:sorry|unable)|I can(?:'|no)t (?:help|assist|do that)|"
    r"as an AI (?:language )?model)\b", re.IGNORECASE)
_END_OK = re.compile(r"""[.!?:;)\]}"'`*>|\u3002\u201d]\s*$|\n\s*$""")


class RuleJudge:
    name = "llmtrace-rules"

    def __init__(self, pass_label: str = "pass", fail_label: str = "fail") -> None:
        self.pass_label = pass_label
        self.fail_label = fail_label

    @property
    def version(self) -> str:
        return "1"

    def judge(self, task_data: dict[str, Any]) -> Verdict | None:
        answer = str(task_data.get("answer") or "")
        error = (task_data.get("metadata") or {}).get("error")
        if error:
            return Verdict(self.fail_label, 0.0, f"The run failed with an error: {error}", 0.9)
        if not answer.strip():
            return Verdict(self.fail_label, 0.0, "The final answer is empty.", 0.95)
        if _REFUSAL.search(answer):
            return Verdict(self.fail_label, 0.3,
                           "The answer reads as a refusal or disclaimer; check it was warranted.",
                           0.5)
        stripped = answer.rstrip()
        last_line = stripped.splitlines()[-1] if stripped else ""
        list_item = re.match(r"^\s*(?:[-*\u2022]|\d+[.)])\s", last_line) is not None
        if len(stripped) > 40 and not list_item and not _END_OK.search(stripped):
            return Verdict(self.fail_label, 0.2,
                           f"The answer seems cut off: it ends with {stripped[-25:]!r}.", 0.6)
        return Verdict(self.pass_label, 0.7,
                       "No rule check fired (empty, error, refusal, truncation); "
                       "a rule judge cannot check correctness.", 0.3)
