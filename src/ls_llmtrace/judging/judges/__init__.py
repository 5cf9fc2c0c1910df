"""Judges: anything that turns a trace (as a Label Studio task) into a verdict.

Every verdict carries the judge's identity and version (``Judge.version``). Three kinds:
the offline rule judge (``rules``), the learned evaluator trained on reviewer labels
(``learned``), and the LLM judge over any OpenAI-compatible endpoint (``llm``).
"""

from ls_llmtrace.judging.judges.base import (
    Judge,
    Metrics,
    Quote,
    Verdict,
    apply_threshold,
    pass_fail_labels,
)
from ls_llmtrace.judging.judges.rules import RuleJudge

__all__ = ["Judge", "Metrics", "Quote", "RuleJudge", "Verdict", "apply_threshold",
           "pass_fail_labels"]
