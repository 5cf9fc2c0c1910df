"""The store's queue tables: the queue registry, claims, named locks, pair candidates.

:class:`QueueStore` is mixed into :class:`~ls_llmtrace.store.db.Store`; routing
(``ingest/routing.py``) keeps only the logic and calls these methods. A claim is a row in
``queue_items`` per (project, trace or pair), inserted in a write transaction before the
Label Studio import, so two imports at once never both import the same item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.store.engine import Connection


def _now() -> str:
    return datetime.now(UTC).isoformat()


_CHUNK = 500  # keys per ``IN (...)``


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class QueueStore:
    """Typed access to the queue tables (needs ``conn`` and ``transaction`` of the Store)."""

    conn: Connection

    def transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    # the queue registry: one project and one current schema version per queue ---------

    def queue(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM queues WHERE queue=?", (name,)).fetchone()
        return dict(row) if row is not None else None

    def queues(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM queues ORDER BY queue")]

    def set_queue(self, name: str, project_id: int, schema_id: str, schema_version: int,
                  kind: str, title: str) -> None:
        """Record the queue's project and current version (and the project beside it)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO queues (queue, project_id, schema_id, schema_version, kind, title, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (queue) DO UPDATE SET "
                "project_id=excluded.project_id, schema_id=excluded.schema_id, "
                "schema_version=excluded.schema_version, kind=excluded.kind, "
                "title=excluded.title, updated_at=excluded.updated_at",
                (name, project_id, schema_id, schema_version, kind, title, _now()))
            conn.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE "
                "SET queue=excluded.queue, schema_id=excluded.schema_id, "
                "schema_version=excluded.schema_version, title=excluded.title",
                (project_id, name, schema_id, schema_version, title))

    def project_kind(self, project_id: int) -> str | None:
        """The kind (review, pairwise, adjudication) of the queue whose current project
        this is, or None."""
        row = self.conn.execute("SELECT kind FROM queues WHERE project_id=?",
                                (project_id,)).fetchone()
        return str(row["kind"]) if row is not None else None

    def set_adjudication_queue(self, queue: str, source_queue: str) -> None:
        """Record that ``queue`` settles the disagreements of ``source_queue``."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO adjudication_queues (queue, source_queue, created_at) VALUES "
                "(?, ?, ?) ON CONFLICT (queue) DO UPDATE SET source_queue=excluded.source_queue",
                (queue, source_queue, _now()))

    def adjudication_queues(self, source_queue: str) -> list[dict[str, Any]]:
        """The adjudication queues of a review queue, with their current project."""
        rows = self.conn.execute(
            "SELECT a.queue, a.source_queue, q.project_id FROM adjudication_queues a LEFT JOIN "
            "queues q ON q.queue=a.queue WHERE a.source_queue=? ORDER BY a.queue",
            (source_queue,))
        return [dict(r) for r in rows]

    def queue_counts(self) -> dict[str, tuple[int, int]]:
        """Queue -> (items claimed, items with a task) over the queue's current project."""
        rows = self.conn.execute(
            "SELECT q.queue, COUNT(*) AS items, SUM(CASE WHEN q.task_id IS NULL THEN 0 ELSE 1 "
            "END) AS tasks FROM queue_items q JOIN queues r ON r.queue=q.queue AND "
            "r.project_id=q.project_id GROUP BY q.queue")
        return {r["queue"]: (int(r["items"]), int(r["tasks"] or 0)) for r in rows}

    # named locks ------------------------------------------------------------------------

    def try_lock(self, name: str, owner: str, stale_before: datetime) -> str | None:
        """Take the named lock (a holder older than ``stale_before`` is dropped). Returns
        None when taken, else who holds it."""
        with self.transaction() as conn:
            row = conn.execute("SELECT owner, acquired_at FROM store_locks WHERE name=?",
                               (name,)).fetchone()
            if row is not None and datetime.fromisoformat(row["acquired_at"]) < stale_before:
                conn.execute("DELETE FROM store_locks WHERE name=?", (name,))
                row = None
            if row is not None:
                return str(row["owner"])
            conn.execute("INSERT INTO store_locks VALUES (?, ?, ?)", (name, owner, _now()))
        return None

    def release_lock(self, name: str, owner: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM store_locks WHERE name=? AND owner=?", (name, owner))

    # signals and stored traces ------------------------------------------------------------

    def records_for(self, trace_ids: Sequence[str]) -> dict[str, list[AnnotationRecord]]:
        """The live records of each trace (every trace id is a key)."""
        out: dict[str, list[AnnotationRecord]] = {t: [] for t in trace_ids}
        ids = list(trace_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in self.conn.execute(
                    f"SELECT trace_id, body FROM records WHERE deleted=0 AND trace_id IN "
                    f"({_marks(chunk)})", chunk):
                out[row["trace_id"]].append(AnnotationRecord.model_validate_json(row["body"]))
        return out

    def traces_after(self, after: str, limit: int) -> list[Trace]:
        """Stored traces with an id above ``after``, by id (keyset paging)."""
        rows = self.conn.execute(
            "SELECT body FROM traces WHERE trace_id > ? ORDER BY trace_id LIMIT ?",
            (after, limit)).fetchall()
        return [Trace.model_validate_json(r["body"]) for r in rows]

    def iter_traces(self, batch_size: int = 1000) -> Iterator[list[Trace]]:
        after = ""
        while True:
            batch = self.traces_after(after, batch_size)
            if not batch:
                return
            yield batch
            after = batch[-1].trace_id

    # claims -----------------------------------------------------------------------------

    def queue_items(self, queue: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM queue_items"
        args: list[Any] = []
        if queue:
            sql += " WHERE queue=?"
            args.append(queue)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY queue, item_key", args)]

    def open_claims(self, project_id: int, keys: Sequence[str], owner: str,
                    ) -> list[dict[str, Any]]:
        """Claims of these keys held by another importer and not finished (no task id):
        key, who holds it, since when, when its task was sent (None: not yet) and the
        ledger's highest task id then."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start:start + _CHUNK])
            out.extend(dict(r) for r in self.conn.execute(
                f"SELECT item_key, claimed_by, claimed_at, sent_at, sent_after_task FROM "
                f"queue_items WHERE "
                f"project_id=? AND task_id IS NULL AND claimed_by<>? AND item_key IN "
                f"({_marks(chunk)})", [project_id, owner, *chunk]))
        return out

    def claim(self, project_id: int, queue: str, items: Sequence[tuple[str, str]], owner: str,
              take_over: Sequence[str] = ()) -> set[str]:
        """Claim (key, reason) items in one write transaction: new keys, and the keys in
        ``take_over`` (unfinished claims of a crashed import, which the caller checked).
        Returns the keys ``owner`` now holds without a task."""
        keys = [k for k, _ in items]
        now = _now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO queue_items (project_id, item_key, queue, reason, claimed_by, "
                "claimed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, item_key) "
                "DO NOTHING", [(project_id, k, queue, r, owner, now) for k, r in items])
            taken = list(take_over)
            for start in range(0, len(taken), _CHUNK):
                chunk = taken[start:start + _CHUNK]
                conn.execute(
                    f"UPDATE queue_items SET claimed_by=?, claimed_at=?, sent_at=NULL, "
                    f"sent_after_task=NULL WHERE project_id=? AND task_id IS NULL AND "
                    f"item_key IN ({_marks(chunk)})", [owner, now, project_id, *chunk])
            held: set[str] = set()
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                held.update(r["item_key"] for r in conn.execute(
                    f"SELECT item_key FROM queue_items WHERE project_id=? AND claimed_by=? AND "
                    f"task_id IS NULL AND item_key IN ({_marks(chunk)})",
                    [project_id, owner, *chunk]))
            return held

    def mark_sent(self, project_id: int, keys: Sequence[str], owner: str) -> None:
        """The tasks of these claims are on their way to Label Studio (from now on, a
        crash leaves them possibly created there, with ids above the ledger's highest)."""
        now = _now()
        with self.transaction() as conn:
            after = conn.execute(
                "SELECT COALESCE(MAX(task_id), 0) AS m FROM ls_tasks WHERE project_id=?",
                (project_id,)).fetchone()["m"]
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                conn.execute(
                    f"UPDATE queue_items SET sent_at=?, sent_after_task=? WHERE project_id=? "
                    f"AND claimed_by=? AND task_id IS NULL AND item_key IN ({_marks(chunk)})",
                    [now, int(after), project_id, owner, *chunk])

    def finish_claims(self, project_id: int, pairs: Sequence[tuple[int, str]]) -> None:
        """Record created tasks: the ledger row and the claim's task id, (task id, key)
        pairs, in one transaction."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO ls_tasks (project_id, trace_id, task_id) VALUES (?, ?, ?) "
                "ON CONFLICT (project_id, trace_id) DO NOTHING",
                [(project_id, key, task_id) for task_id, key in pairs])
            conn.executemany("UPDATE queue_items SET task_id=? WHERE project_id=? AND "
                             "item_key=?", [(t, project_id, k) for t, k in pairs])

    def release_claims(self, project_id: int, keys: Sequence[str], owner: str) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM queue_items WHERE project_id=? AND item_key=? AND "
                             "claimed_by=? AND task_id IS NULL",
                             [(project_id, k, owner) for k in keys])

    def close_claims(self, project_id: int, pairs: Sequence[tuple[int, str]],
                     only_open: bool = False) -> None:
        """Record the task id of claimed items: (task id, key) pairs."""
        extra = " AND task_id IS NULL" if only_open else ""
        with self.transaction() as conn:
            conn.executemany(f"UPDATE queue_items SET task_id=? WHERE project_id=? AND "
                             f"item_key=?{extra}", [(t, project_id, k) for t, k in pairs])

    def claims_from_ledger(self, project_id: int, queue: str) -> None:
        """Every task of the ledger becomes (or closes) a claim of the queue."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_items (project_id, item_key, queue, reason, claimed_by, "
                "claimed_at, task_id) SELECT project_id, trace_id, ?, 'found in Label Studio', "
                "'ledger', ?, task_id FROM ls_tasks WHERE project_id=? "
                "ON CONFLICT (project_id, item_key) DO UPDATE SET task_id=excluded.task_id "
                "WHERE queue_items.task_id IS NULL",
                (queue, _now(), project_id))

    # pairwise queues --------------------------------------------------------------------

    def add_pair_candidates(self, queue: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """(trace id, input hash, variant) candidates of a pairwise queue (kept once)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO pair_candidates (queue, trace_id, input_hash, variant) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (queue, trace_id) DO NOTHING",
                [(queue, *row) for row in rows])

    def paired(self, queue: str, trace_ids: Sequence[str]) -> set[str]:
        return {r["trace_id"] for r in self.conn.execute(
            f"SELECT trace_id FROM pair_candidates WHERE queue=? AND paired=1 AND trace_id IN "
            f"({_marks(trace_ids)})", [queue, *trace_ids])}

    def unpair(self, queue: str, trace_ids: tuple[str, str]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE pair_candidates SET paired=0 WHERE queue=? AND trace_id IN "
                         "(?, ?)", (queue, *trace_ids))

    def pair_up(self, queue: str, trace_id: str) -> str | None:
        """Atomically mark ``trace_id`` and an unpaired partner (same input, other variant)
        as paired; returns the partner's id."""
        with self.transaction() as conn:
            mine = conn.execute("SELECT input_hash, variant, paired FROM pair_candidates "
                                "WHERE queue=? AND trace_id=?", (queue, trace_id)).fetchone()
            if mine is None or mine["paired"]:
                return None
            row = conn.execute(
                "SELECT trace_id FROM pair_candidates WHERE queue=? AND input_hash=? AND "
                "variant<>? AND paired=0 AND trace_id<>? ORDER BY trace_id LIMIT 1",
                (queue, mine["input_hash"], mine["variant"], trace_id)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE pair_candidates SET paired=1 WHERE queue=? AND trace_id IN "
                         "(?, ?)", (queue, trace_id, row["trace_id"]))
            return str(row["trace_id"])
