"""The record store: every table and every SQL statement of the package."""

from ls_llmtrace.store.db import RecordFilter, Store

__all__ = ["RecordFilter", "Store"]
