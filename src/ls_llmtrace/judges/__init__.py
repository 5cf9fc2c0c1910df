"""Judges: anything that turns a trace (as a Label Studio task) into a verdict.

Every verdict carries the judge's identity and version (``Judge.version``). Three kinds:
the offline rule judge (``rules``), the learned evaluator trained on reviewer labels
(``learned``), and the LLM judge over any OpenAI-compatible endpoint (``llm``).
"""

from .base import Judge, Metrics, Quote, Verdict
from .rules import RuleJudge

__all__ = ["Judge", "Metrics", "Quote", "RuleJudge", "Verdict"]
