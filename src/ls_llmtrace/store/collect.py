"""The OTLP receiver's spool (``ls-llmtrace collect``).

Every span and log record the receiver accepts is a row of ``collect_spool``, written in
the same transaction as its trace's row in ``collect_traces`` and committed before the
receiver answers: what was acknowledged is on disk. Rows are unique by (trace, kind, key)
(the span id; for a log record its ``log.record.uid`` or a hash of it), so an exporter's
retry of a request already stored adds nothing. The assembler reads a trace's rows,
assembles and routes the trace, then marks the rows it used; the rows stay, so a late span
re-assembles the whole trace. Times are epoch seconds. Mixed into
:class:`ls_llmtrace.store.Store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ls_llmtrace.store.engine import Connection


@dataclass(frozen=True)
class SpoolItem:
    """One accepted span or log record, as the receiver stores it."""

    trace_id: str
    kind: str  # "span" or "log"
    key: str  # span id, or the log record's uid / hash
    body: str  # its OTLP/JSON, with its resource and scope
    ends_trace: bool = False  # a root span (exporters send a span once it has ended)


@dataclass(frozen=True)
class SpoolReject:
    """A span or log record the receiver refused, with the reason."""

    signal: str  # "traces" or "logs"
    location: str
    field: str
    reason: str
    raw: str = ""


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class CollectStore:
    """Typed access to ``collect_spool``, ``collect_traces`` and ``collect_rejects``."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def spool(self, items: Sequence[SpoolItem], rejects: Sequence[SpoolReject],
              now: float) -> int:
        """Store what one request brought, in one transaction. Returns how many items
        were new (a retried request's items are already there)."""
        ends: dict[str, int] = {}
        for item in items:
            ends[item.trace_id] = max(ends.get(item.trace_id, 0), int(item.ends_trace))
        added = 0
        with self.transaction() as conn:
            if items:
                added = conn.executemany(
                    "INSERT INTO collect_spool (trace_id, kind, item_key, body, received_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trace_id, kind, item_key) DO NOTHING",
                    [(i.trace_id, i.kind, i.key, i.body, now) for i in items]).rowcount
            if added > 0:
                # only traces that got a new item now: a retried request moves no clock
                conn.executemany(
                    "INSERT INTO collect_traces (trace_id, first_received_at, "
                    "last_received_at, root_ended, pending) SELECT ?, ?, ?, ?, 1 "
                    "WHERE EXISTS (SELECT 1 FROM collect_spool WHERE trace_id=? AND "
                    "received_at=? AND assembled=0) "
                    "ON CONFLICT (trace_id) DO UPDATE SET "
                    "last_received_at=excluded.last_received_at, root_ended=CASE WHEN "
                    "excluded.root_ended=1 THEN 1 ELSE collect_traces.root_ended END, pending=1",
                    [(t, now, now, end, t, now) for t, end in ends.items()])
            if rejects:
                conn.executemany(
                    "INSERT INTO collect_rejects (received_at, signal, location, field, "
                    "reason, raw) VALUES (?, ?, ?, ?, ?, ?)",
                    [(now, r.signal, r.location, r.field, r.reason, r.raw[:2000])
                     for r in rejects])
        return added

    def spool_pending(self) -> int:
        """Accepted items not assembled yet (the receiver's buffer)."""
        row = self.conn.execute(
            "SELECT COUNT(*) AS n FROM collect_spool WHERE assembled=0").fetchone()
        return int(row["n"])

    def ready_traces(self, quiet_before: float, settle_before: float,
                     limit: int = 200) -> list[str]:
        """Traces with items not assembled yet whose root span has arrived and that got
        nothing since ``settle_before``, or that got nothing since ``quiet_before``."""
        rows = self.conn.execute(
            "SELECT trace_id FROM collect_traces WHERE pending=1 AND ("
            "(root_ended=1 AND last_received_at <= ?) OR last_received_at <= ?) "
            "ORDER BY last_received_at, trace_id LIMIT ?",
            (settle_before, quiet_before, limit))
        return [str(r["trace_id"]) for r in rows]

    def spooled(self, trace_id: str) -> list[tuple[int, str, str]]:
        """Every item of a trace: (item id, kind, body), in arrival order."""
        rows = self.conn.execute(
            "SELECT item_id, kind, body FROM collect_spool WHERE trace_id=? ORDER BY item_id",
            (trace_id,))
        return [(int(r["item_id"]), str(r["kind"]), str(r["body"])) for r in rows]

    def mark_assembled(self, done: Sequence[tuple[str, int]], now: float) -> None:
        """(trace id, highest item id used): those items are assembled; a trace that got
        more items meanwhile stays pending."""
        with self.transaction() as conn:
            for trace_id, upto in done:
                conn.execute("UPDATE collect_spool SET assembled=1 WHERE trace_id=? AND "
                             "item_id<=? AND assembled=0", (trace_id, upto))
                conn.execute(
                    "UPDATE collect_traces SET assemblies=assemblies+1, assembled_at=?, "
                    "pending=CASE WHEN EXISTS (SELECT 1 FROM collect_spool WHERE trace_id=? "
                    "AND assembled=0) THEN 1 ELSE 0 END WHERE trace_id=?",
                    (now, trace_id, trace_id))

    def collect_trace_state(self, trace_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM collect_traces WHERE trace_id=?",
                                (trace_id,)).fetchone()
        return dict(row) if row is not None else None

    def collect_counts(self) -> dict[str, int]:
        """Items spooled, items waiting, traces, traces waiting, rejects."""
        out = {}
        for name, sql in (
                ("items", "SELECT COUNT(*) AS n FROM collect_spool"),
                ("items_waiting", "SELECT COUNT(*) AS n FROM collect_spool WHERE assembled=0"),
                ("traces", "SELECT COUNT(*) AS n FROM collect_traces"),
                ("traces_waiting", "SELECT COUNT(*) AS n FROM collect_traces WHERE pending=1"),
                ("rejects", "SELECT COUNT(*) AS n FROM collect_rejects")):
            out[name] = int(self.conn.execute(sql).fetchone()["n"])
        return out

    def collect_rejects(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM collect_rejects ORDER BY reject_id LIMIT ?",
                                 (limit,))
        return [dict(r) for r in rows]

    def trace_tasks(self, trace_ids: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
        """(project id, task id) of each trace's tasks in the task ledger."""
        out: dict[str, list[tuple[int, int]]] = {}
        if not trace_ids:
            return out
        rows = self.conn.execute(
            f"SELECT trace_id, project_id, task_id FROM ls_tasks WHERE trace_id IN "
            f"({_marks(trace_ids)}) ORDER BY project_id", list(trace_ids))
        for r in rows:
            out.setdefault(str(r["trace_id"]), []).append((int(r["project_id"]),
                                                           int(r["task_id"])))
        return out
