"""A persistent verdict cache: re-running a judge on the same trace makes no new call.

Keyed by (trace content hash, schema version, judge identity and version). Only valid,
verified verdicts are stored, so a failure is retried on the next run. One SQLite file
(default ``<home>/judge_cache.sqlite``), shared by the threads of one backend process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ls_llmtrace.errors import StoreError
from ls_llmtrace.judging.judges.base import Quote, Verdict

# Only what a judge reads: ids and bookkeeping do not change the verdict.
CONTENT_KEYS = ("system_prompt", "messages", "tool_calls", "documents", "answer", "metadata")


def content_hash(task_data: dict[str, Any]) -> str:
    """A stable hash of the trace content a judge sees in one task."""
    content = {k: task_data.get(k) for k in CONTENT_KEYS}
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def verdict_to_json(verdict: Verdict) -> str:
    return json.dumps(asdict(verdict), sort_keys=True, ensure_ascii=False)


def verdict_from_json(text: str) -> Verdict:
    raw = json.loads(text)
    return Verdict(
        label=raw["label"], score=float(raw["score"]), explanation=raw["explanation"],
        confidence=float(raw["confidence"]), categories=tuple(raw.get("categories") or ()),
        quotes=tuple(Quote(**q) for q in raw.get("quotes") or ()),
    )


class VerdictCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=30,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (content_hash TEXT NOT NULL, "
                "schema_version TEXT NOT NULL, judge TEXT NOT NULL, verdict TEXT NOT NULL, "
                "PRIMARY KEY (content_hash, schema_version, judge))")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the judge cache {path}: {exc}; set "
                             "LS_LLMTRACE_JUDGE_CACHE to a writable file or 'off'") from exc

    def get(self, key: str, schema_version: str, judge: str) -> Verdict | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT verdict FROM verdicts WHERE content_hash=? AND schema_version=? "
                "AND judge=?", (key, schema_version, judge)).fetchone()
        return verdict_from_json(row[0]) if row else None

    def put(self, key: str, schema_version: str, judge: str, verdict: Verdict) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO verdicts VALUES (?, ?, ?, ?) ON CONFLICT "
                "(content_hash, schema_version, judge) DO UPDATE SET verdict=excluded.verdict",
                (key, schema_version, judge, verdict_to_json(verdict)))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
