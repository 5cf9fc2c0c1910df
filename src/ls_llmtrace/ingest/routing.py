"""Traces in, routed into review queues (Label Studio projects), each at most once.

The import path: traces are stored with the feedback that came inside them, the queue
rules are evaluated against each trace and its signals (records), and every (queue,
trace) that matches is **claimed** in the store (a row in ``queue_items``, inserted in a
write transaction) before its task is sent to Label Studio. Only the claimant imports, so
re-runs and two imports running at once never create the same task twice.

A claim names its importer (:mod:`ls_llmtrace.ingest.claimant`) and says whether its
tasks were sent. When the importer is gone (killed, crashed) its claims are taken over at
once: unsent ones directly; sent ones after one listing of the tasks Label Studio created
since (found ones are recorded, not imported again), waiting up to
``LS_LLMTRACE_CLAIM_SENT_GRACE_S`` for a request Label Studio may still be working on.
Claims of an import that still runs are left to it and counted as waiting for it; those
of an importer on another host, after the lease ``LS_LLMTRACE_CLAIM_LEASE_S``.

Batches are pipelined: while Label Studio creates one batch's tasks (one request of
pre-encoded JSON, in a sender thread), the next batch is read, stored, routed, claimed
and encoded; the store is only ever used from the calling thread. The first batch is
small and the batches grow (:func:`batch_sizes`), so Label Studio starts early.

``route`` re-evaluates the rules over stored traces: a thumbs-down that arrives after its
trace routes the trace then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ls_llmtrace import settings
from ls_llmtrace.errors import StoreError
from ls_llmtrace.ingest import claimant, queues
from ls_llmtrace.ingest.convert import ReviewOptions, metadata_text, trace_to_task
from ls_llmtrace.ingest.importers import ImportSummary, Rejected
from ls_llmtrace.ingest.pairwise import (
    build_pairwise_config,
    input_hash,
    order_pair,
    pair_key,
    pair_task,
)
from ls_llmtrace.ingest.rules import QueueConfig, QueueRule, Signals, reasons, single_queue
from ls_llmtrace.labelstudio.client import LabelStudioClient, encode_tasks, project_title
from ls_llmtrace.models import Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

# how long a Label Studio lookup that found no project of a queue is trusted
_FRESH_S = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


def _stale() -> datetime:
    return _now() - timedelta(seconds=settings.claim_lease_s())


@dataclass
class RouteSummary(ImportSummary):
    """The import summary plus where things went."""

    feedback_records: int = 0
    not_routed: int = 0
    waiting_for_pair: int = 0
    # claimed by another import that is still running: that import creates their tasks
    with_running_import: int = 0
    taken_over: int = 0  # claims of a crashed import this run finished
    per_queue: dict[str, int] = field(default_factory=dict)

    def queues_line(self) -> str:
        parts = [f"{q} +{n}" for q, n in sorted(self.per_queue.items())]
        waiting = f"; waiting for a pair {self.waiting_for_pair}" if self.waiting_for_pair \
            else ""
        running = (f"; left to another import still running {self.with_running_import}"
                   if self.with_running_import else "")
        taken = (f"; taken over from a crashed import {self.taken_over}"
                 if self.taken_over else "")
        return (f"queues: {', '.join(parts) or 'nothing new'}; matched no queue "
                f"{self.not_routed}{waiting}{running}{taken}; feedback records "
                f"{self.feedback_records}")


@contextmanager
def store_lock(store: Store, name: str, owner: str, timeout: float = 120.0) -> Iterator[bool]:
    """A named lock in the store (shared by every process using it); a lock whose holder
    is known to be gone (killed, on this host) is taken over at once. Yields whether it
    was free at the first try (nobody held it)."""
    deadline = time.monotonic() + timeout
    first = True
    while True:
        holder = store.try_lock(name, owner, _stale())
        if holder is None:
            break
        first = False
        if claimant.is_running(holder) is False:  # its process was killed: free now
            store.release_lock(name, holder)
            continue
        if time.monotonic() > deadline:
            raise StoreError(f"lock {name!r} is held by {holder}: wait for that import "
                             "to finish, or delete the row from store_locks if it crashed")
        time.sleep(0.1)
    try:
        yield first
    finally:
        store.release_lock(name, owner)


def reconcile_from(client: LabelStudioClient, store: Store, project_id: int, queue: str,
                   after_task_id: int) -> set[str]:
    """One listing of the tasks above ``after_task_id``: recorded in the ledger, their
    claims closed. Returns their trace (or pair) keys."""
    pairs = list(client.task_trace_ids(project_id, after_task_id))
    store.record_tasks(project_id, pairs)
    store.claims_from_ledger(project_id, queue)
    return {key for _, key in pairs}


def reconcile_tasks(client: LabelStudioClient, store: Store, project_id: int) -> int:
    """Record tasks Label Studio has that the ledger lacks (e.g. after a crash mid-import)."""
    pairs = list(client.task_trace_ids(project_id, store.max_task_id(project_id)))
    store.record_tasks(project_id, pairs)
    return len(pairs)


class Router:
    """Places traces into the queues of one rule set, each queue at its current schema
    version (an explicit ``schema`` must be that version; new queues start at it, or at
    the default schema)."""

    def __init__(self, client: LabelStudioClient, store: Store, config: QueueConfig,
                 schema: AnnotationSchema | None = None,
                 options: ReviewOptions | None = None,
                 notes: Callable[[Trace], dict[str, str]] | None = None) -> None:
        """``notes``: extra rows for a trace's metadata table in its task (what the
        adjudication queue shows the owner about each reviewer's answer)."""
        self.client = client
        self.notes = notes
        self.store = store
        self.config = config
        self.explicit = schema
        self.options = options or ReviewOptions.from_settings()
        self.owner = claimant.own_name()
        # at most one import request in flight, posted by one sender thread
        self._sender: ThreadPoolExecutor | None = None
        self._inflight: tuple[Future[list[int]], int, str, list[str]] | None = None
        self._projects: dict[str, int] = {}
        self._schemas: dict[str, AnnotationSchema] = {}
        # queue -> when check_queues found it neither in the store nor in Label Studio
        self._missing: dict[str, float] = {}
        self._checked = False
        self._viewed: set[int] = set()  # projects whose Data Manager tab is made

    # projects ---------------------------------------------------------------------------

    @property
    def project_ids(self) -> dict[str, int]:
        """Queue name -> project id, for the queues this router has used."""
        return dict(self._projects)

    def ensure_views(self) -> None:
        """The Data Manager tab of every review queue this router used (not of pairwise
        queues: those stay blind), once per project."""
        pairwise = {r.name for r in self.config.queues if r.pairwise is not None}
        for name, project_id in self._projects.items():
            if name not in pairwise and project_id not in self._viewed:
                queues.ensure_review_view(self.client, project_id)
                self._viewed.add(project_id)

    def check_queues(self) -> None:
        """Resolve every queue of the rules to its current version before anything is
        written; an explicit schema of another version is refused here."""
        if self._checked:
            return
        for rule in self.config.queues:
            queue, schema = queues.queue_schema(self.client, self.store, rule.name,
                                                self.explicit)
            self._schemas[rule.name] = schema
            if queue is None:
                self._missing[rule.name] = time.monotonic()
        self._checked = True

    def schema(self, rule: QueueRule) -> AnnotationSchema:
        """The schema version the queue's tasks are built for."""
        self.check_queues()
        return self._schemas[rule.name]

    def project(self, rule: QueueRule) -> int:
        """The queue's project (created once, under a store lock), reconciled with LS."""
        if rule.name in self._projects:
            return self._projects[rule.name]
        schema = self.schema(rule)
        created = False
        with store_lock(self.store, f"project:{project_title(schema, rule.name)}",
                        self.owner) as free:
            # Label Studio was asked a moment ago (check_queues) and nobody held the lock
            # since: only an import sharing this store can have created the project, and
            # it would have recorded it there (one that held the lock, maybe killed while
            # creating it, sends us to Label Studio again)
            fresh = free and (time.monotonic() - self._missing.get(rule.name, -_FRESH_S)
                              < _FRESH_S)
            queue = (queues.known(self.store, rule.name) if fresh else
                     queues.resolve(self.client, self.store, rule.name, schema.id))
            if queue is not None:
                queues.check_version(queue, schema)
            elif rule.pairwise is None:
                queue = queues.create_project(self.client, self.store, rule.name, schema,
                                              looked_up=True)
                created = True
            else:
                queue = queues.create_project(
                    self.client, self.store, rule.name, schema,
                    pairwise_config=build_pairwise_config(schema),
                    compare=rule.pairwise.compare, looked_up=True)
                created = True
        if rule.reviewers is not None:
            self.client.set_overlap(queue.project_id, rule.reviewers,
                                    rule.overlap_percent if rule.reviewers > 1 else 100)
        if not created:  # a project created just now has no tasks to read back
            self._reconcile(queue.project_id, rule.name)
        self._projects[rule.name] = queue.project_id
        return queue.project_id

    def _reconcile(self, project_id: int, queue: str) -> None:
        """Read back tasks Label Studio has but the ledger lacks; close their claims."""
        reconcile_tasks(self.client, self.store, project_id)
        self.store.claims_from_ledger(project_id, queue)

    # claims -----------------------------------------------------------------------------

    def _claim(self, project_id: int, queue: str, items: list[tuple[str, str]],
               summary: RouteSummary | None = None) -> tuple[list[str], set[str]]:
        """Claim (key, reason) items. Returns (the keys this process now must import, the
        keys left to another import that is still running)."""
        if not items:
            return [], set()
        keys = [k for k, _ in items]
        stale = _stale()
        take_over, running = self._crashed_claims(project_id, queue, keys, stale)
        mine = self.store.claim(project_id, queue, items, self.owner, take_over)
        if summary is not None:
            summary.taken_over += len(mine & set(take_over))
        return [k for k in keys if k in mine], running - mine

    def _crashed_claims(self, project_id: int, queue: str, keys: list[str],
                        stale: datetime) -> tuple[list[str], set[str]]:
        """Sort the unfinished claims other importers hold on ``keys``: (keys of crashed
        imports, now free to take over; keys of imports still running). A crashed
        import's sent claims are first looked up in Label Studio with one listing of the
        tasks created since (repeated while a request may still be in its hands)."""
        crashed: dict[str, dict[str, Any]] = {}
        running: set[str] = set()
        for claim in self.store.open_claims(project_id, keys, self.owner):
            alive = claimant.is_running(claim["claimed_by"])
            if alive is None:  # another host: only the lease tells
                alive = datetime.fromisoformat(claim["claimed_at"]) >= stale
            if alive:
                running.add(claim["item_key"])
            else:
                crashed[claim["item_key"]] = claim
        sent = {k: c for k, c in crashed.items()
                if c["sent_at"] is not None or not claimant.records_sent_state(c["claimed_by"])}
        if sent:
            grace = settings.claim_sent_grace_s()
            latest = max((datetime.fromisoformat(c["sent_at"]) for c in sent.values()
                          if c["sent_at"] is not None), default=None)
            deadline = (latest + timedelta(seconds=grace)) if latest else _now()
            after = min(int(c["sent_after_task"] or 0) if c["sent_at"] is not None else 0
                        for c in sent.values())
            found: set[str] = set()
            while True:  # what Label Studio has is recorded, not imported again
                found |= reconcile_from(self.client, self.store, project_id, queue,
                                        after) & set(sent)
                if found >= set(sent) or _now() >= deadline:
                    break
                time.sleep(min(1.0, max(0.0, (deadline - _now()).total_seconds())))
            for key in found:
                crashed.pop(key, None)
        return sorted(crashed), running

    def _send(self, project_id: int, queue: str, keys: list[str],
              tasks: list[dict[str, Any]]) -> None:
        """Post claimed tasks in the sender thread. The previous request is answered
        first, so at most one is in flight; its task ids are recorded once this one is on
        its way (Label Studio does not wait for that write)."""
        body = encode_tasks(tasks)
        try:
            answered = self._wait()
        except BaseException:  # the previous request failed: this one is not sent
            self.store.release_claims(project_id, keys, self.owner)
            raise
        self.store.mark_sent(project_id, keys, self.owner)
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="ls-llmtrace-import")
        try:
            future = self._sender.submit(self.client.import_tasks, project_id, body)
        except BaseException:
            self.store.release_claims(project_id, keys, self.owner)
            raise
        self._inflight = (future, project_id, queue, keys)
        if answered is not None:
            self._record(*answered)

    def _wait(self) -> tuple[int, str, list[str], list[int]] | None:
        """Wait for the request in flight: (project, queue, keys, the task ids Label
        Studio gave), None when none was in flight. When it failed, its claims are
        released and the failure raised."""
        if self._inflight is None:
            return None
        future, project_id, queue, keys = self._inflight
        self._inflight = None
        try:
            task_ids = future.result()
        except BaseException:
            self.store.release_claims(project_id, keys, self.owner)
            raise
        return project_id, queue, keys, task_ids

    def _record(self, project_id: int, queue: str, keys: list[str],
                task_ids: list[int]) -> None:
        """Record an answered request's tasks in the ledger, its claims finished."""
        if len(task_ids) == len(keys):
            self.store.finish_claims(project_id, list(zip(task_ids, keys, strict=True)))
        else:
            self._reconcile(project_id, queue)

    def _finish(self) -> None:
        """Wait for the request in flight and record its tasks (or release its claims
        when it failed, and raise that failure)."""
        answered = self._wait()
        if answered is not None:
            self._record(*answered)

    def _send_now(self, project_id: int, queue: str, keys: list[str],
                  tasks: list[dict[str, Any]]) -> None:
        self._send(project_id, queue, keys, tasks)
        self._finish()

    def close(self) -> None:
        """Finish the request in flight and stop the sender thread."""
        try:
            self._finish()
        finally:
            if self._sender is not None:
                self._sender.shutdown(wait=True)
                self._sender = None

    # placing traces ---------------------------------------------------------------------

    def place(self, traces: list[Trace], summary: RouteSummary) -> None:
        """Route a batch of stored traces into every queue they match, once (its last
        request may still be in flight: callers finish it, see :meth:`_sending`)."""
        signals = {t: Signals.from_records(r) for t, r in
                   self.store.records_for([t.trace_id for t in traces]).items()}
        new_for: set[str] = set()
        matched: set[str] = set()
        waiting: set[str] = set()
        running: set[str] = set()  # left to another import that still runs
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
            schema = self.schema(rule)
            mine, theirs = self._claim(project_id, rule.name,
                                       [(t.trace_id, r) for t, r in wanted], summary)
            claimed = set(mine)
            running |= theirs
            batch = [t for t, _ in wanted if t.trace_id in claimed]
            if batch:
                reason_of = {t.trace_id: r for t, r in wanted}
                self._send(project_id, rule.name, [t.trace_id for t in batch],
                           [self._task(t, schema, reason_of[t.trace_id], signals[t.trace_id])
                            for t in batch])
                summary.per_queue[rule.name] = summary.per_queue.get(rule.name, 0) + len(batch)
                new_for.update(t.trace_id for t in batch)
        summary.imported += len(new_for)
        summary.with_running_import += len(running - new_for)
        summary.duplicates += len(matched - new_for - running)
        summary.waiting_for_pair += len(waiting)
        summary.not_routed += len([t for t in traces if t.trace_id not in matched | waiting])

    def _task(self, trace: Trace, schema: AnnotationSchema, reason: str = "",
              signals: Signals | None = None) -> dict[str, Any]:
        task = trace_to_task(trace, schema, self.options)
        # why the trace is in this queue, and its end users' thumbs (Data Manager columns)
        task["data"].update(queue_reasons=reason,
                            thumbs=signals.thumbs() if signals is not None else "")
        if self.notes is not None:
            table = task["data"].get("metadata")
            task["data"]["metadata"] = {**(table if isinstance(table, dict) else {}),
                                        **self.notes(trace)}
            task["data"]["metadata_text"] = metadata_text(task["data"]["metadata"])
        return task

    def review_task(self, trace: Trace, rule: QueueRule) -> dict[str, Any]:
        """The task of a stored trace in a review queue, as routing writes it (with why it
        is in the queue and its thumbs, from the records in the store)."""
        signals = Signals.from_records(self.store.records_for([trace.trace_id])[trace.trace_id])
        return self._task(trace, self.schema(rule), "; ".join(reasons(rule, trace, signals)),
                          signals)

    def _place_pairs(self, rule: QueueRule, traces: list[Trace], signals: dict[str, Signals],
                     summary: RouteSummary, new_for: set[str], waiting: set[str]) -> set[str]:
        assert rule.pairwise is not None
        compare = rule.pairwise.compare
        candidates = [t for t in traces if reasons(rule, t, signals[t.trace_id])
                      and getattr(t.metadata, compare, None)]
        if not candidates:
            return set()
        self.store.add_pair_candidates(
            rule.name, [(t.trace_id, input_hash(t), str(getattr(t.metadata, compare)))
                        for t in candidates])
        project_id = self.project(rule)
        schema = self.schema(rule)
        for trace in candidates:
            partner_id = self.store.pair_up(rule.name, trace.trace_id)
            partner = self.store.trace(partner_id) if partner_id is not None else None
            if partner is None:
                continue
            left, right = order_pair(trace, partner)
            key = pair_key(left.trace_id, right.trace_id)
            try:
                mine, _ = self._claim(project_id, rule.name,
                                      [(key, f"same input, {compare} differs")], summary)
                if not mine:
                    continue
                self._send_now(project_id, rule.name, [key],
                               [pair_task(left, right, schema, compare, self.options)])
            except BaseException:
                self.store.unpair(rule.name, (left.trace_id, right.trace_id))
                raise
            summary.per_queue[rule.name] = summary.per_queue.get(rule.name, 0) + 1
            new_for.update((left.trace_id, right.trace_id))
        # Matched: in a pair now or from before. The rest wait for a partner.
        ids = [t.trace_id for t in candidates]
        paired = self.store.paired(rule.name, ids)
        waiting.update(set(ids) - paired)
        return paired

    # entry points -----------------------------------------------------------------------

    def ingest(self, items: Iterable[Trace | list[Rejected]],
               batch_size: int = settings.IMPORT_BATCH,
               progress: Callable[[RouteSummary], None] | None = None) -> RouteSummary:
        """Store traces and their feedback, then route them (streaming, in batches that
        ramp up: :func:`batch_sizes`)."""
        self.check_queues()
        summary = RouteSummary()
        batch: dict[str, Trace] = {}
        sizes = batch_sizes(batch_size)
        size = next(sizes)

        def flush() -> None:
            if not batch:
                return
            traces = list(batch.values())
            self.store.upsert_traces(t.model_copy(update={"feedback": []}) if t.feedback
                                     else t for t in traces)
            records = [record for trace in traces for record in trace.feedback]
            if records:
                with self.store.transaction() as conn:
                    summary.feedback_records += self.store.upsert_records(conn, records)
            self.place(traces, summary)
            batch.clear()
            if progress:
                progress(summary)

        with self._sending():
            for item in items:
                summary.read += 1
                if isinstance(item, list):
                    summary.rejected.extend(item)
                    continue
                if item.trace_id in batch:
                    summary.duplicates += 1
                    continue
                batch[item.trace_id] = item
                if len(batch) >= size:
                    flush()
                    size = next(sizes)
            flush()
        return summary

    @contextmanager
    def _sending(self) -> Iterator[None]:
        """The last request finished when the block ends; on a failure inside it, the
        request in flight is still finished (recorded or released) before the failure
        goes on."""
        try:
            yield
        except BaseException:
            with suppress(Exception):
                self.close()
            raise
        self.close()

    def route(self, traces: list[Trace]) -> RouteSummary:
        """Route these stored traces into every queue they match, once; their last
        request is answered and its tasks recorded before this returns."""
        summary = RouteSummary()
        with self._sending():
            self.place(traces, summary)
        return summary

    def route_stored(self, batch_size: int = settings.IMPORT_BATCH,
                     progress: Callable[[RouteSummary], None] | None = None) -> RouteSummary:
        """Re-evaluate the rules over every stored trace (new signals route traces now)."""
        self.check_queues()
        summary = RouteSummary()
        with self._sending():
            for traces in self.store.iter_traces(batch_size):
                summary.read += len(traces)
                self.place(traces, summary)
                if progress:
                    progress(summary)
        return summary


FIRST_BATCH = 100  # traces in the first batch of an import
# how the batches grow (measured with 3-4 KB native tasks on 2 cores): Label Studio takes
# about 90 ms per import request plus 0.3 ms per task, the import about 0.22 ms per trace
# to read, store, claim and encode it, so it can prepare 400 + 1.4 x size traces meanwhile
GROWTH_FIXED, GROWTH = 400, 1.4


def batch_sizes(batch_size: int, first: int = FIRST_BATCH) -> Iterator[int]:
    """The sizes of an import's batches: ``first``, then each as big as the import can
    prepare while Label Studio works on the one before (its fixed cost per request plus
    its time per task: ``GROWTH_FIXED + GROWTH * size``), up to ``batch_size`` (then
    ``batch_size`` on): Label Studio gets its first request after a short wait and
    seldom waits for the next."""
    size = max(1, min(first, batch_size))
    while True:
        yield size
        size = min(batch_size, GROWTH_FIXED + int(size * GROWTH))


@dataclass
class ImportResult:
    summary: RouteSummary
    project_ids: dict[str, int]

    @property
    def project_id(self) -> int:
        """The project of a single-queue import."""
        [project_id] = set(self.project_ids.values())
        return project_id


def import_traces(
    client: LabelStudioClient,
    store: Store,
    items: Iterable[Trace | list[Rejected]],
    queue: str | None = None,
    rules: QueueConfig | None = None,
    schema: AnnotationSchema | None = None,
    batch_size: int = settings.IMPORT_BATCH,
    progress: Callable[[RouteSummary], None] | None = None,
    options: ReviewOptions | None = None,
    reviewers: int | None = None,
) -> ImportResult:
    """Import traces: stored with their feedback as records, routed by ``rules`` (or all
    into ``queue``, default settings.default_queue(), with ``reviewers`` per task when
    given), each queue at its current schema version, every task claimed in the store
    before Label Studio creates it."""
    config = rules or single_queue(queue or settings.default_queue(), reviewers)
    router = Router(client, store, config, schema, options)
    if rules is None:  # one queue: its project exists even when nothing is new
        router.project(config.queues[0])
    summary = router.ingest(items, batch_size, progress)
    router.ensure_views()
    return ImportResult(summary, router.project_ids)
