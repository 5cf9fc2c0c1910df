"""Importers: trace files in, :class:`~ls_llmtrace.models.Trace` objects out.

Each importer yields either a Trace or a :class:`Rejected` item naming where and why,
so one bad record never stops the rest.
"""

from ls_llmtrace.ingest.importers.base import ImportSummary
from ls_llmtrace.ingest.importers.detect import FORMATS, detect_format, read_any
from ls_llmtrace.ingest.importers.native import read_native
from ls_llmtrace.models import Rejected, write_rejects

__all__ = ["FORMATS", "ImportSummary", "Rejected", "detect_format", "read_any", "read_native",
           "write_rejects"]
