"""The judge model Label Studio talks to. Thin: the work is in ``ls_llmtrace``.

Which judge answers is decided per label config, from the environment
(``LS_LLMTRACE_JUDGE``, see README.md):

- ``llm``: :class:`ls_llmtrace.judging.judges.llm.LLMJudge` over an OpenAI-compatible endpoint;
- ``learned``: :class:`ls_llmtrace.judging.judges.learned.LearnedJudge`, trained on the reviewers'
  labels in the store, retrained on webhooks; until it has enough labels,
- ``rules``: :class:`ls_llmtrace.judging.judges.RuleJudge`, offline checks.

The protocol routes (``/health``, ``/setup``, ``/predict``, ``/webhook``, ``/versions``,
``/metrics``) live in :mod:`ls_llmtrace.judging.backend`.
"""

from __future__ import annotations

from flask import Flask

from ls_llmtrace.judging.backend import create_app
from ls_llmtrace.judging.judges import RuleJudge
from ls_llmtrace.judging.judges.learned import LearnedJudge
from ls_llmtrace.judging.judges.llm import LLMJudge

JUDGES = {"llm": LLMJudge, "learned": LearnedJudge, "rules": RuleJudge}


def build_app() -> Flask:
    """The backend app; the judge is chosen by the settings at each request."""
    return create_app()
