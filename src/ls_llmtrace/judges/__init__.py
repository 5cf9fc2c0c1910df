"""Judges: anything that turns a trace (as a Label Studio task) into a verdict.

Every verdict carries the judge's identity and version (``Judge.version``).
"""

from .base import Judge, Verdict
from .rules import RuleJudge

__all__ = ["Judge", "RuleJudge", "Verdict"]
