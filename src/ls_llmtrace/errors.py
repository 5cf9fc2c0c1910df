"""One error hierarchy. Every message says what went wrong and how to fix it.

The CLI turns these into one-line messages and a non-zero exit code; set
``LS_LLMTRACE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations


class LLMTraceError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(LLMTraceError):
    """A setting or file the user gave is wrong."""

    exit_code = 2


class SchemaError(ConfigError):
    """An annotation schema file breaks the rules."""


class InputError(LLMTraceError):
    """Input data (a trace file, a feedback file) could not be read at all."""


class LabelStudioError(LLMTraceError):
    """Label Studio could not be reached or answered with an error."""

    exit_code = 3


class LabelStudioStartError(LabelStudioError):
    """The managed Label Studio did not come up."""


class ConnectorError(LLMTraceError):
    """A tracing tool the plugin pulls from or pushes to (Phoenix, MLflow, an OTLP
    endpoint) could not be reached or answered with an error (exit 7)."""

    exit_code = 7


class StoreError(LLMTraceError):
    """The record store could not be opened or migrated."""


class MigrationError(ConfigError):
    """A migration file is invalid, does not fit the two schema versions, or does not
    cover every incompatible change."""


class MigrationRequired(LLMTraceError):
    """An incompatible schema version would orphan existing annotations."""

    exit_code = 5
class JudgeError(LLMTraceError):
    """A judge could not give a verdict for one task (the task gets no prediction)."""


class JudgeCallError(JudgeError):
    """The LLM endpoint could not be reached or kept failing after the retries (exit 6, so
    CI tells "the judge is unavailable" apart from "the judge got worse", exit 1)."""

    exit_code = 6


class JudgeReplyError(JudgeError):
    """The LLM answered, but not with a verdict the schema allows."""
