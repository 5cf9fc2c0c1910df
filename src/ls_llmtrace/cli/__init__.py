"""The ``ls-llmtrace`` command line: thin click commands, one module per stage of the loop.

Each module parses, calls the library, prints; nothing outside ``cli`` imports it.
"""

from ls_llmtrace.cli import (  # noqa: F401  (each module registers its commands)
    agreement,
    calibrate,
    clusters,
    collect,
    connectors,
    evals,
    gate,
    golden,
    ingest,
    judgegate,
    judging,
    records,
    schema,
    services,
)
from ls_llmtrace.cli.common import main

__all__ = ["main"]
