"""A persistent verdict cache: re-running a judge on the same trace makes no new call.

Keyed by (trace content hash, schema version, judge identity and version). Only valid,
verified verdicts are stored, so a failure is retried on the next run. One SQLite file
(default ``<home>/judge_cache.sqlite``, through :class:`ls_llmtrace.store.cache.KeyedCache`),
shared by the threads of one backend process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ls_llmtrace.judging.judges.base import Quote, Verdict
from ls_llmtrace.store.cache import KeyedCache

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
    """Verdicts by (content hash, schema version, judge identity and version)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache = KeyedCache(path, "judge cache", "set LS_LLMTRACE_JUDGE_CACHE to a "
                                 "writable file or 'off'")

    @staticmethod
    def _key(key: str, schema_version: str, judge: str) -> str:
        return json.dumps([key, schema_version, judge])

    def get(self, key: str, schema_version: str, judge: str) -> Verdict | None:
        text = self._cache.get("verdicts", self._key(key, schema_version, judge))
        return verdict_from_json(text) if text is not None else None

    def put(self, key: str, schema_version: str, judge: str, verdict: Verdict) -> None:
        self._cache.put("verdicts", self._key(key, schema_version, judge),
                        verdict_to_json(verdict))

    def __len__(self) -> int:
        return self._cache.count("verdicts")

    def close(self) -> None:
        self._cache.close()
