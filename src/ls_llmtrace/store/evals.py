"""The regression gate's tables: stored runs (the baselines) and the candidate cache.

A run is stored whole as JSON (``body``, written by ``evals/gate.py``) beside the columns a
baseline is looked up by. The candidate cache maps a key (endpoint, model, temperature
and the exact messages sent, hashed by ``evals/candidates.py``) to the generated output,
so re-running the gate on the same set makes no call. :class:`EvalStore` is a part of
:class:`ls_llmtrace.store.Store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from ls_llmtrace.store.engine import Connection


def _now() -> str:
    return datetime.now(UTC).isoformat()


class EvalStore:
    """Typed access to the gate's tables (needs ``conn`` and ``transaction`` of the Store)."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    # runs -------------------------------------------------------------------------------

    def save_eval_run(self, run_id: str, name: str, set_id: str, created_at: str,
                      passed: int, total: int, body: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO eval_runs (run_id, name, set_id, created_at, passed, total, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                "name=excluded.name, set_id=excluded.set_id, created_at=excluded.created_at, "
                "passed=excluded.passed, total=excluded.total, body=excluded.body",
                (run_id, name, set_id, created_at, passed, total, body))

    def eval_run_body(self, run_id: str) -> str | None:
        row = self.conn.execute("SELECT body FROM eval_runs WHERE run_id=?",
                                (run_id,)).fetchone()
        return str(row["body"]) if row is not None else None

    def latest_eval_run_body(self, name: str | None = None,
                             set_prefix: str | None = None) -> str | None:
        """The newest stored run, of one name and/or on sets whose id starts with
        ``set_prefix`` (the schema version part of a set id: the same set's lineage)."""
        sql = "SELECT body FROM eval_runs WHERE 1=1"
        args: list[Any] = []
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        if set_prefix is not None:
            sql += " AND substr(set_id, 1, ?) = ?"
            args += [len(set_prefix), set_prefix]
        row = self.conn.execute(sql + " ORDER BY created_at DESC, run_id DESC LIMIT 1",
                                args).fetchone()
        return str(row["body"]) if row is not None else None

    def eval_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT run_id, name, set_id, created_at, passed, total FROM eval_runs "
            "ORDER BY created_at DESC, run_id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    # the candidate cache ----------------------------------------------------------------

    def cached_candidates(self, keys: Sequence[str]) -> dict[str, str]:
        """Cache key -> generated output, for the keys that are cached."""
        out: dict[str, str] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                    f"SELECT cache_key, output FROM eval_candidates WHERE cache_key IN ({marks})",
                    chunk):
                out[row["cache_key"]] = row["output"]
        return out

    def cache_candidates(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Store (cache key, endpoint, model, output) rows."""
        now = _now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO eval_candidates (cache_key, endpoint, model, output, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (cache_key) DO UPDATE SET "
                "output=excluded.output, created_at=excluded.created_at",
                [(*row, now) for row in rows])
