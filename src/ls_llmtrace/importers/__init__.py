"""Importers: trace files in, :class:`~ls_llmtrace.models.Trace` objects out.

Each importer yields either a Trace or a :class:`Rejected` item naming where and why,
so one bad record never stops the rest.
"""

from .base import ImportSummary, Rejected, write_rejects
from .native import read_native

__all__ = ["ImportSummary", "Rejected", "read_native", "write_rejects"]
