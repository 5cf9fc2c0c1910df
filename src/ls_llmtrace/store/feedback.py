"""The store's queries for feedback signals (records/feedback.py writes through these)."""

from __future__ import annotations

from collections.abc import Sequence

from ls_llmtrace.models import AnnotationRecord
from ls_llmtrace.store.engine import Connection

_CHUNK = 500  # keys per IN (...) list: well under every engine's parameter limit


class FeedbackQueries:
    """Queries run inside a caller's transaction (hence static, taking the connection)."""

    @staticmethod
    def stored_record(conn: Connection, record_key: str) -> AnnotationRecord | None:
        """The record stored under this key, if any."""
        row = conn.execute("SELECT body FROM records WHERE record_key=?",
                           (record_key,)).fetchone()
        return AnnotationRecord.model_validate_json(row["body"]) if row is not None else None

    @staticmethod
    def unlinked_keys(conn: Connection, record_keys: Sequence[str]) -> set[str]:
        """Those of these records that still wait for their trace."""
        found: set[str] = set()
        for start in range(0, len(record_keys), _CHUNK):
            chunk = list(record_keys[start:start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            found.update(r["record_key"] for r in conn.execute(
                f"SELECT record_key FROM records WHERE trace_linked=0 "
                f"AND record_key IN ({marks})", chunk))
        return found
