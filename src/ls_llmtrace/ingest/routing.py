"""Traces in, routed into review queues (Label Studio projects), each at most once.

The import path: traces are stored with the feedback that came inside them, the queue
rules are evaluated against each trace and its signals (records), and every (queue,
trace) that matches is **claimed** in the store (a row in ``queue_items``, inserted in a
write transaction) before its task is sent to Label Studio. Only the claimant imports, so
re-runs and two imports running at once never create the same task twice. A claim whose
importer died before recording its task id is taken over after a lease
(``LS_LLMTRACE_CLAIM_LEASE_S``), once Label Studio has been re-read for tasks created
meanwhile (reconcile by task id), so a crash neither duplicates nor drops a trace.

``route`` re-evaluates the rules over stored traces: a thumbs-down that arrives after its
trace routes the trace then.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import StoreError
from ls_llmtrace.ingest.convert import ReviewOptions, trace_to_task
from ls_llmtrace.ingest.importers import ImportSummary, Rejected
from ls_llmtrace.ingest.pairwise import (
    build_pairwise_config,
    input_hash,
    order_pair,
    pair_key,
    pair_task,
)
from ls_llmtrace.ingest.pipeline import project_for, reconcile_tasks
from ls_llmtrace.ingest.rules import QueueConfig, QueueRule, Signals, reasons
from ls_llmtrace.labelstudio.client import LabelStudioClient, project_title
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RouteSummary(ImportSummary):
    """The import summary plus where things went."""

    feedback_records: int = 0
    not_routed: int = 0
    waiting_for_pair: int = 0
    per_queue: dict[str, int] = field(default_factory=dict)

    def queues_line(self) -> str:
        parts = [f"{q} +{n}" for q, n in sorted(self.per_queue.items())]
        waiting = f"; waiting for a pair {self.waiting_for_pair}" if self.waiting_for_pair \
            else ""
        return (f"queues: {', '.join(parts) or 'nothing new'}; matched no queue "
                f"{self.not_routed}{waiting}; feedback records {self.feedback_records}")


@contextmanager
def store_lock(store: Store, name: str, owner: str, timeout: float = 120.0) -> Iterator[None]:
    """A named lock in the store (shared by every process using it)."""
    deadline = time.monotonic() + timeout
    lease = timedelta(seconds=settings.claim_lease_s())
    while True:
        with store.transaction() as conn:
            row = conn.execute("SELECT owner, acquired_at FROM store_locks WHERE name=?",
                               (name,)).fetchone()
            if row is not None and datetime.fromisoformat(row["acquired_at"]) < _now() - lease:
                conn.execute("DELETE FROM store_locks WHERE name=?", (name,))
                row = None
            if row is None:
                conn.execute("INSERT INTO store_locks VALUES (?, ?, ?)",
                             (name, owner, _now().isoformat()))
                break
        if time.monotonic() > deadline:
            raise StoreError(f"lock {name!r} is held by {row['owner']}: wait for that import "
                             "to finish, or delete the row from store_locks if it crashed")
        time.sleep(0.1)
    try:
        yield
    finally:
        with store.transaction() as conn:
            conn.execute("DELETE FROM store_locks WHERE name=? AND owner=?", (name, owner))


def records_for(store: Store, trace_ids: list[str]) -> dict[str, list[AnnotationRecord]]:
    out: dict[str, list[AnnotationRecord]] = {t: [] for t in trace_ids}
    for start in range(0, len(trace_ids), 500):
        chunk = trace_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
                f"SELECT trace_id, body FROM records WHERE deleted=0 AND trace_id IN ({marks})",
                chunk):
            out[row["trace_id"]].append(AnnotationRecord.model_validate_json(row["body"]))
    return out


def queue_items(store: Store, queue: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM queue_items"
    args: list[Any] = []
    if queue:
        sql += " WHERE queue=?"
        args.append(queue)
    return [dict(r) for r in store.conn.execute(sql + " ORDER BY queue, item_key", args)]


def queue_counts(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT q.queue, q.project_id, COUNT(*) AS items, SUM(q.task_id IS NOT NULL) AS tasks, "
        "p.title FROM queue_items q LEFT JOIN projects p ON p.project_id = q.project_id "
        "GROUP BY q.queue, q.project_id ORDER BY q.queue")
    return [dict(r) for r in rows]


class Router:
    """Places traces into the queues of one rule set, on one schema version."""

    def __init__(self, client: LabelStudioClient, store: Store, schema: AnnotationSchema,
                 config: QueueConfig, options: ReviewOptions | None = None) -> None:
        self.client = client
        self.store = store
        self.schema = schema
        self.config = config
        self.options = options or ReviewOptions.from_settings()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._projects: dict[str, int] = {}

    # projects ---------------------------------------------------------------------------

    @property
    def project_ids(self) -> dict[str, int]:
        """Queue name -> project id, for the queues this router has used."""
        return dict(self._projects)

    def project(self, rule: QueueRule) -> int:
        """The queue's project (created once, under a store lock), reconciled with LS."""
        if rule.name in self._projects:
            return self._projects[rule.name]
        title = project_title(self.schema, rule.name)
        with store_lock(self.store, f"project:{title}", self.owner):
            if rule.pairwise is None:
                project_id = project_for(self.client, self.store, self.schema, rule.name)
            else:
                project_id, _ = self.client.push_config(
                    title, build_pairwise_config(self.schema),
                    description=f"ls-llmtrace pairwise queue '{rule.name}', schema "
                    f"{self.schema.version_id}, comparing {rule.pairwise.compare}")
                self.store.remember_project(project_id, rule.name, self.schema.id,
                                            self.schema.version, title)
        self._reconcile(project_id, rule.name)
        self._projects[rule.name] = project_id
        return project_id

    def _reconcile(self, project_id: int, queue: str) -> None:
        """Read back tasks Label Studio has but the ledger lacks; close their claims."""
        reconcile_tasks(self.client, self.store, project_id)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_items (project_id, item_key, queue, reason, claimed_by, "
                "claimed_at, task_id) SELECT project_id, trace_id, ?, 'found in Label Studio', "
                "'ledger', ?, task_id FROM ls_tasks WHERE project_id=? "
                "ON CONFLICT (project_id, item_key) DO UPDATE SET task_id=excluded.task_id "
                "WHERE queue_items.task_id IS NULL",
                (queue, _now().isoformat(), project_id))

    # claims -----------------------------------------------------------------------------

    def _claim(self, project_id: int, queue: str, items: list[tuple[str, str]]) -> list[str]:
        """Claim (key, reason) items; return the keys this process now must import."""
        if not items:
            return []
        keys = [k for k, _ in items]
        marks = ",".join("?" * len(keys))
        stale = (_now() - timedelta(seconds=settings.claim_lease_s())).isoformat()
        stale_keys = [r["item_key"] for r in self.store.conn.execute(
            f"SELECT item_key FROM queue_items WHERE project_id=? AND task_id IS NULL "
            f"AND claimed_at < ? AND item_key IN ({marks})", [project_id, stale, *keys])]
        # A crashed import may have created these tasks: ask Label Studio for each one
        # (stale claims are rare; the exact lookup is one request each).
        for key in stale_keys:
            found = self.client.task_ids_for_trace(project_id, key)
            if found:
                self.store.record_tasks(project_id, [(min(found), key)])
                with self.store.transaction() as conn:
                    conn.execute("UPDATE queue_items SET task_id=? WHERE project_id=? AND "
                                 "item_key=? AND task_id IS NULL", (min(found), project_id, key))
        now = _now().isoformat()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO queue_items (project_id, item_key, queue, reason, claimed_by, "
                "claimed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, item_key) "
                "DO NOTHING", [(project_id, k, queue, r, self.owner, now) for k, r in items])
            conn.execute(
                f"UPDATE queue_items SET claimed_by=?, claimed_at=? WHERE project_id=? AND "
                f"task_id IS NULL AND claimed_at < ? AND claimed_by<>? AND item_key IN ({marks})",
                [self.owner, now, project_id, stale, self.owner, *keys])
            rows = conn.execute(
                f"SELECT item_key FROM queue_items WHERE project_id=? AND claimed_by=? AND "
                f"task_id IS NULL AND item_key IN ({marks})", [project_id, self.owner, *keys])
            mine = {r["item_key"] for r in rows}
        return [k for k in keys if k in mine]

    def _release(self, project_id: int, keys: list[str]) -> None:
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM queue_items WHERE project_id=? AND item_key=? AND "
                             "claimed_by=? AND task_id IS NULL",
                             [(project_id, k, self.owner) for k in keys])

    def _send(self, project_id: int, queue: str, keys: list[str],
              tasks: list[dict[str, Any]]) -> None:
        """Import claimed tasks; record their ids (or release the claims on failure)."""
        try:
            task_ids = self.client.import_tasks(project_id, tasks)
        except BaseException:
            self._release(project_id, keys)
            raise
        if len(task_ids) == len(keys):
            pairs = list(zip(task_ids, keys, strict=True))
            self.store.record_tasks(project_id, pairs)
            with self.store.transaction() as conn:
                conn.executemany("UPDATE queue_items SET task_id=? WHERE project_id=? AND "
                                 "item_key=?", [(t, project_id, k) for t, k in pairs])
        else:
            self._reconcile(project_id, queue)

    # placing traces ---------------------------------------------------------------------

    def place(self, traces: list[Trace], summary: RouteSummary) -> None:
        """Route a batch of stored traces into every queue they match, once."""
        signals = {t: Signals.from_records(r)
                   for t, r in records_for(self.store, [t.trace_id for t in traces]).items()}
        new_for: set[str] = set()
        matched: set[str] = set()
        waiting: set[str] = set()
        for rule in self.config.queues:
            if rule.pairwise is not None:
                matched |= self._place_pairs(rule, traces, signals, summary, new_for, waiting)
                continue
            wanted = []
            for trace in traces:
                why = reasons(rule, trace, signals[trace.trace_id])
                if why:
                    wanted.append((trace, "; ".join(why)))
            if not wanted:
                continue
            matched.update(t.trace_id for t, _ in wanted)
            project_id = self.project(rule)
            claimed = set(self._claim(project_id, rule.name,
                                      [(t.trace_id, r) for t, r in wanted]))
            batch = [t for t, _ in wanted if t.trace_id in claimed]
            if batch:
                self._send(project_id, rule.name, [t.trace_id for t in batch],
                           [trace_to_task(t, self.schema, self.options) for t in batch])
                summary.per_queue[rule.name] = summary.per_queue.get(rule.name, 0) + len(batch)
                new_for.update(t.trace_id for t in batch)
        summary.imported += len(new_for)
        summary.duplicates += len(matched - new_for)
        summary.waiting_for_pair += len(waiting)
        summary.not_routed += len([t for t in traces if t.trace_id not in matched | waiting])

    def _place_pairs(self, rule: QueueRule, traces: list[Trace], signals: dict[str, Signals],
                     summary: RouteSummary, new_for: set[str], waiting: set[str]) -> set[str]:
        assert rule.pairwise is not None
        compare = rule.pairwise.compare
        candidates = [t for t in traces if reasons(rule, t, signals[t.trace_id])
                      and getattr(t.metadata, compare, None)]
        if not candidates:
            return set()
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO pair_candidates (queue, trace_id, input_hash, variant) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (queue, trace_id) DO NOTHING",
                [(rule.name, t.trace_id, input_hash(t), str(getattr(t.metadata, compare)))
                 for t in candidates])
        project_id = self.project(rule)
        for trace in candidates:
            partner = self._pair_up(rule.name, trace, compare)
            if partner is None:
                continue
            left, right = order_pair(trace, partner)
            key = pair_key(left.trace_id, right.trace_id)
            try:
                if not self._claim(project_id, rule.name,
                                   [(key, f"same input, {compare} differs")]):
                    continue
                self._send(project_id, rule.name, [key],
                           [pair_task(left, right, self.schema, compare, self.options)])
            except BaseException:
                self._unpair(rule.name, (left.trace_id, right.trace_id))
                raise
            summary.per_queue[rule.name] = summary.per_queue.get(rule.name, 0) + 1
            new_for.update((left.trace_id, right.trace_id))
        # Matched: in a pair now or from before. The rest wait for a partner.
        ids = [t.trace_id for t in candidates]
        marks = ",".join("?" * len(ids))
        paired = {r["trace_id"] for r in self.store.conn.execute(
            f"SELECT trace_id FROM pair_candidates WHERE queue=? AND paired=1 AND trace_id IN "
            f"({marks})", [rule.name, *ids])}
        waiting.update(set(ids) - paired)
        return paired

    def _unpair(self, queue: str, trace_ids: tuple[str, str]) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE pair_candidates SET paired=0 WHERE queue=? AND trace_id IN "
                         "(?, ?)", (queue, *trace_ids))

    def _pair_up(self, queue: str, trace: Trace, compare: str) -> Trace | None:
        """Atomically mark ``trace`` and an unpaired partner (same input, other variant)."""
        with self.store.transaction() as conn:
            mine = conn.execute("SELECT input_hash, variant, paired FROM pair_candidates "
                                "WHERE queue=? AND trace_id=?", (queue, trace.trace_id)).fetchone()
            if mine is None or mine["paired"]:
                return None
            row = conn.execute(
                "SELECT trace_id FROM pair_candidates WHERE queue=? AND input_hash=? AND "
                "variant<>? AND paired=0 AND trace_id<>? ORDER BY trace_id LIMIT 1",
                (queue, mine["input_hash"], mine["variant"], trace.trace_id)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE pair_candidates SET paired=1 WHERE queue=? AND trace_id IN "
                         "(?, ?)", (queue, trace.trace_id, row["trace_id"]))
        partner = self.store.trace(row["trace_id"])
        return partner

    # entry points -----------------------------------------------------------------------

    def ingest(self, items: Iterable[Trace | list[Rejected]], batch_size: int = 1000,
               progress: Callable[[RouteSummary], None] | None = None) -> RouteSummary:
        """Store traces and their feedback, then route them (streaming, in batches)."""
        summary = RouteSummary()
        batch: dict[str, Trace] = {}

        def flush() -> None:
            if not batch:
                return
            traces = list(batch.values())
            self.store.upsert_traces(t.model_copy(update={"feedback": []}) for t in traces)
            with self.store.transaction() as conn:
                for trace in traces:
                    for record in trace.feedback:
                        summary.feedback_records += self.store.upsert_record(conn, record)
            self.place(traces, summary)
            batch.clear()
            if progress:
                progress(summary)

        for item in items:
            summary.read += 1
            if isinstance(item, list):
                summary.rejected.extend(item)
                continue
            if item.trace_id in batch:
                summary.duplicates += 1
                continue
            batch[item.trace_id] = item
            if len(batch) >= batch_size:
                flush()
        flush()
        return summary

    def route_stored(self, batch_size: int = 1000,
                     progress: Callable[[RouteSummary], None] | None = None) -> RouteSummary:
        """Re-evaluate the rules over every stored trace (new signals route traces now)."""
        summary = RouteSummary()
        after = ""
        while True:
            rows = self.store.conn.execute(
                "SELECT trace_id, body FROM traces WHERE trace_id > ? ORDER BY trace_id LIMIT ?",
                (after, batch_size)).fetchall()
            if not rows:
                break
            traces = [Trace.model_validate_json(r["body"]) for r in rows]
            summary.read += len(traces)
            self.place(traces, summary)
            after = rows[-1]["trace_id"]
            if progress:
                progress(summary)
        return summary
