"""The judge model Label Studio talks to. Thin: the work is in ``ls_llmtrace``.

``LLMTraceJudge`` picks the judge (the offline rule judge today) and exposes it the way a
Label Studio ML backend example does; the protocol routes live in ``ls_llmtrace.mlbackend``.
"""

from __future__ import annotations

from ls_llmtrace.judges import RuleJudge


class LLMTraceJudge(RuleJudge):
    """The default judge of this backend: offline rule checks, no LLM needed."""
