"""The ``ls-llmtrace`` command line: thin click commands, one module per stage of the loop.

Each module parses, calls the library, prints; nothing outside ``cli`` imports it.
"""

from ls_llmtrace.cli import evals, golden, ingest, judging, records, schema, services  # noqa: F401
from ls_llmtrace.cli.common import main

__all__ = ["main"]
